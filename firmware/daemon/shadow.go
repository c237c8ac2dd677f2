package daemon

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/ota"
)

// Shadow mode (docs/contracts.md, "OTA (issue 8)"): a candidate model waiting for site approval
// runs on every study of its sequence after the committed model's result is queued, in the same
// worker; its result is compared with the committed one and recorded in the job, and never
// written as a result, queued for a destination or published.

// ShadowComparison is one study run by the committed model and by the shadow candidate.
type ShadowComparison struct {
	Job          string    `json:"job"`
	Current      string    `json:"current"`   // the committed model's name and version
	Candidate    string    `json:"candidate"` // the shadow's name and version
	Target       string    `json:"target"`
	Dice         float64   `json:"dice"` // of the masks (all kept components); 1 when both are empty
	CurrentCM3   float64   `json:"current_cm3"`
	CandidateCM3 float64   `json:"candidate_cm3"`
	MS           float64   `json:"ms"` // the candidate's run
	Error        string    `json:"error,omitempty"`
	Time         time.Time `json:"time"`
}

// VolumeDiff is the candidate's volume relative to the current one, for the status page.
func (c ShadowComparison) VolumeDiff() string {
	if c.CurrentCM3 == 0 {
		return fmt.Sprintf("%+.2f cm³", c.CandidateCM3)
	}
	return fmt.Sprintf("%+.1f %%", 100*(c.CandidateCM3-c.CurrentCM3)/c.CurrentCM3)
}

// shadowInput is what the worker keeps of the last committed result for the comparison.
type shadowInput struct {
	job   string
	mask  []bool
	voxel float64 // cm3
}

// noteResult keeps the committed model's mask of a job for its shadow run (worker only).
func (d *Daemon) noteResult(id string, res *pipeline.Result) {
	if d.ota == nil || d.ota.mgr == nil || res == nil || res.Segmentation == nil {
		return
	}
	g := res.Volume.Geometry
	d.ota.last = &shadowInput{job: id, mask: union(res.Segmentation), voxel: g.PixelSpacing[0] * g.PixelSpacing[1] * g.SliceSpacing / 1000}
}

func union(s *contour.Segmentation) []bool {
	out := make([]bool, len(s.GTV.In))
	for i, b := range s.GTV.In {
		out[i] = b || (s.Review != nil && i < len(s.Review.In) && s.Review.In[i])
	}
	return out
}

// dice of two masks on one grid; two empty masks agree.
func dice(a, b []bool) (float64, int, int) {
	var na, nb, both int
	for i := range min(len(a), len(b)) {
		if a[i] {
			na++
		}
		if b[i] {
			nb++
		}
		if a[i] && b[i] {
			both++
		}
	}
	if na+nb == 0 {
		return 1, 0, 0
	}
	return 2 * float64(both) / float64(na+nb), na, nb
}

// shadowRun runs the shadow candidate of the job's sequence on the job's series and records the
// comparison in the job. Nothing of the candidate's result leaves the box.
func (d *Daemon) shadowRun(ctx context.Context, id string) {
	if d.ota == nil || d.ota.mgr == nil {
		return
	}
	in := d.ota.last
	d.ota.last = nil
	j, ok := d.jobs.get(id)
	if in == nil || in.job != id || !ok || j.State != JobDone {
		return
	}
	sh := d.ota.shadows[j.Sequence]
	s := d.ota.mgr.Shadow(j.Sequence)
	if sh == nil || s == nil {
		return
	}
	c := ShadowComparison{Job: id, Current: j.Model, Candidate: sh.Bundle.Meta.Name + " " + sh.Bundle.Meta.Version, Target: s.Target}
	t0 := time.Now()
	res, err := pipeline.Run(ctx, sh, j.Paths, pipeline.Settings{DeviceID: d.cfg.DeviceID, FirmwareVersion: d.opts.Version,
		FirmwareCommit: d.opts.Commit, Classifier: d.live().classify})
	if ctx.Err() != nil {
		return
	}
	c.MS, c.Time = ms(time.Since(t0)), time.Now().UTC()
	if err != nil {
		c.Error = err.Error()
	} else {
		var na, nb int
		c.Dice, na, nb = dice(in.mask, union(res.Segmentation))
		c.CurrentCM3, c.CandidateCM3 = float64(na)*in.voxel, float64(nb)*in.voxel
	}
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	if stored, ok := d.jobs.get(id); ok {
		stored.Shadow = &c
		if err := d.jobs.put(&stored); err != nil {
			d.log.Error("daemon: shadow comparison not persisted", "job", id, "err", err)
		}
	}
	d.log.Info("daemon: shadow compared", "job", id, "candidate", c.Candidate, "dice", c.Dice, "err", c.Error)
}

// reconcileShadows loads the shadow bundles slots.json names and closes the others; only the
// worker calls it, between jobs. A shadow that does not load ends.
func (d *Daemon) reconcileShadows(ctx context.Context) {
	for seq, st := range d.ota.mgr.Snapshot().Sequences {
		have := d.ota.shadows[seq]
		want := st.Shadow
		if have != nil && want != nil && have.Bundle.Meta.Name == want.Name && have.Bundle.Meta.Version == want.Version {
			continue
		}
		if have != nil {
			have.Close()
			delete(d.ota.shadows, seq)
		}
		if want == nil {
			continue
		}
		m, err := pipeline.OpenModel(ctx, d.ota.mgr.ShadowDir(seq), d.engineOptions())
		if err != nil {
			d.ota.mgr.EndShadow(seq, "the shadow model failed to load: "+err.Error())
			continue
		}
		d.ota.shadows[seq] = m
		d.log.Info("daemon: shadow model loaded", "sequence", seq, "model", want.Name, "version", want.Version)
	}
}

// closeShadows closes the shadow models when the worker stops.
func (d *Daemon) closeShadows() {
	if d.ota == nil {
		return
	}
	for seq, m := range d.ota.shadows {
		m.Close()
		delete(d.ota.shadows, seq)
	}
}

// ShadowView is the status page's and /api/ota's view of shadow mode.
type ShadowView struct {
	Sequence    string             `json:"sequence"`
	Current     string             `json:"current"`
	Candidate   string             `json:"candidate"`
	Target      string             `json:"target"`
	Slot        string             `json:"slot"`
	Comparisons []ShadowComparison `json:"comparisons"`
	MeanDice    float64            `json:"mean_dice"` // over the comparisons without error
	Studies     int                `json:"studies"`   // comparisons without error
}

// shadowViews lists every shadow candidate with the comparisons recorded for it (newest first).
func (d *Daemon) shadowViews() []ShadowView {
	if d.ota == nil || d.ota.mgr == nil {
		return nil
	}
	var out []ShadowView
	jobs := d.jobs.list()
	snap := d.ota.mgr.Snapshot()
	for _, seq := range slices.Sorted(maps.Keys(snap.Sequences)) {
		st := snap.Sequences[seq]
		if st.Shadow == nil {
			continue
		}
		v := ShadowView{Sequence: seq, Current: st.Committed.Name + " " + st.Committed.Version,
			Candidate: st.Shadow.Name + " " + st.Shadow.Version, Target: st.Shadow.Target, Slot: st.Shadow.Slot}
		var sum float64
		for _, j := range jobs {
			if j.Shadow == nil || j.Shadow.Target != st.Shadow.Target {
				continue
			}
			v.Comparisons = append(v.Comparisons, *j.Shadow)
			if j.Shadow.Error == "" {
				v.Studies++
				sum += j.Shadow.Dice
			}
		}
		if v.Studies > 0 {
			v.MeanDice = sum / float64(v.Studies)
		}
		out = append(out, v)
	}
	return out
}

// OTAView is GET /api/ota: the slots and the shadow comparisons.
type OTAView struct {
	Slots   map[string]*ota.SeqState `json:"slots"`
	Shadows []ShadowView             `json:"shadows"`
}

func (d *Daemon) otaView() OTAView {
	if d.ota == nil || d.ota.mgr == nil {
		return OTAView{}
	}
	return OTAView{Slots: d.ota.mgr.Snapshot().Sequences, Shadows: d.shadowViews()}
}
