package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/mqtt"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/internal/strictjson"
	"github.com/midline-rt/midline/models"
	"github.com/midline-rt/midline/ota"
)

// OTA commands and state (docs/contracts.md, "OTA (issue 8)").
const (
	OTACommandSchema = "midline.ota-cmd/1"
	OTAStateSchema   = "midline.ota-state/1"
)

// OTACommand is a message on ota/cmd. It is only a trigger: the box acts on Target only if its
// verified TUF metadata releases it to the box's group.
type OTACommand struct {
	Schema string `json:"schema"`
	Action string `json:"action"` // "update" (default) or "check" (metadata and recalls only)
	Target string `json:"target"`
	Now    bool   `json:"now"` // start outside ota.window
}

// OTAState is the retained ota/state message.
type OTAState struct {
	Schema          string                   `json:"schema"`
	DeviceID        string                   `json:"device_id"`
	Time            time.Time                `json:"time"`
	Phase           string                   `json:"phase"`
	Target          string                   `json:"target,omitempty"`
	Name            string                   `json:"name,omitempty"`
	Version         string                   `json:"version,omitempty"`
	Sequence        string                   `json:"sequence,omitempty"`
	Slot            string                   `json:"slot,omitempty"`
	Detail          string                   `json:"detail,omitempty"`
	Error           string                   `json:"error,omitempty"`
	Slots           map[string]*ota.SeqState `json:"slots,omitempty"`
	MetadataExpires *time.Time               `json:"metadata_expires,omitempty"`
}

// otaRuntime is the daemon's side of OTA: the slots' manager and the changes waiting for the
// worker, which alone swaps models, between jobs.
type otaRuntime struct {
	mgr     *ota.Manager // nil when models.dir holds bundles directly
	trigger chan OTACommand

	mu       sync.Mutex
	pending  []ota.Change
	prepared *ota.Prepared
	expires  time.Time
	// refusedTargets: targets (by name, their sha256) a periodic check does not try again.
	refusedTargets map[string]string

	// The worker's own: shadow candidates by sequence and the last committed result's mask.
	shadows map[string]*pipeline.Model
	last    *shadowInput
}

// openSlots seeds models.dir when it is empty (models.seed_dir, else the bundles built into
// the binary), counts this start against any trial (a crash loop rolls back) and reconciles
// the active links. A models.dir of bundle folders is loaded as it is, without OTA.
func (d *Daemon) openSlots() error {
	d.ota = &otaRuntime{trigger: make(chan OTACommand, 4), shadows: map[string]*pipeline.Model{}, refusedTargets: map[string]string{}}
	slots, err := ota.OpenSlots(d.cfg.Models.Dir, seedFS(d.cfg.Models.SeedDir))
	if errors.Is(err, ota.ErrNoSlots) {
		d.log.Info("daemon: models.dir holds bundles directly; over-the-air updates are off", "dir", d.cfg.Models.Dir)
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: models.dir: %w", err)
	}
	trust := ota.Trust{RepoURL: d.cfg.OTA.RepoURL, MetaDir: filepath.Join(d.cfg.StateDir, "ota", "tuf"), Site: d.cfg.Site}
	if d.cfg.OTA.Enabled() {
		if trust.TrustedRoot, err = os.ReadFile(d.cfg.OTA.TrustedRoot); err != nil {
			return fmt.Errorf("daemon: ota.trusted_root: %w", err)
		}
	}
	if d.cfg.OTA.Enabled() && d.cfg.OTA.SiteKey != "" {
		if trust.SiteKey, err = ota.ReadSitePublicKey(d.cfg.OTA.SiteKey); err != nil {
			return fmt.Errorf("daemon: ota.site_key: %w", err)
		}
	}
	mgr, _, err := ota.NewManager(slots, ota.ManagerOptions{
		Trust:    trust,
		StateDir: d.cfg.StateDir, Group: d.cfg.Group, Engine: d.engineOptions(), FirmwareVersion: d.opts.Version,
		TrialJobs: d.cfg.OTA.TrialJobs, TrialTime: time.Duration(d.cfg.OTA.TrialMinutes) * time.Minute, Report: d.otaReport,
		RequireSiteApproval: d.cfg.OTA.RequireSiteApproval,
	})
	d.ota.mgr = mgr
	return err
}

func seedFS(dir string) fs.FS {
	if dir != "" {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return os.DirFS(dir)
		}
	}
	return models.FS()
}

// engineOptions are the engine every model of the daemon opens with.
func (d *Daemon) engineOptions() accel.Options {
	return accel.Options{Engine: accel.Kind(d.cfg.Engine.Kind), Threads: d.cfg.Engine.ThreadCount()}
}

// bundleDir is one bundle openModels loads: by sequence from the slots, or a folder of a
// models.dir that holds bundles directly.
type bundleDir struct{ name, dir string }

func (d *Daemon) bundleDirs() ([]bundleDir, error) {
	if d.ota != nil && d.ota.mgr != nil {
		var out []bundleDir
		for seq := range d.ota.mgr.Snapshot().Sequences {
			out = append(out, bundleDir{seq, d.ota.mgr.ActiveDir(seq)})
		}
		return out, nil
	}
	entries, err := os.ReadDir(d.cfg.Models.Dir)
	if err != nil {
		return nil, fmt.Errorf("daemon: models.dir: %w", err)
	}
	var out []bundleDir
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(d.cfg.Models.Dir, e.Name(), "model.json")); e.IsDir() && err == nil {
			out = append(out, bundleDir{e.Name(), filepath.Join(d.cfg.Models.Dir, e.Name())})
		}
	}
	return out, nil
}

// otaLoadFailed: a trial model that does not load or self-test at start rolls back; the
// committed one is loaded instead.
func (d *Daemon) otaLoadFailed(name string, err error) (string, bool) {
	if d.ota == nil || d.ota.mgr == nil {
		return "", false
	}
	st := d.ota.mgr.Snapshot().Sequences[name]
	if st == nil || st.Trial == nil {
		return "", false
	}
	ch := d.ota.mgr.RollbackTrial(name, "trial model failed at start: "+err.Error())
	if len(ch) == 0 {
		return "", false
	}
	return ch[0].Dir, true
}

// slotOf names the slot a model runs from: "a" or "b" with OTA slots, "models.dir" otherwise.
func (d *Daemon) slotOf(seq string) string {
	if d.ota == nil || d.ota.mgr == nil {
		return "models.dir"
	}
	st := d.ota.mgr.Snapshot().Sequences[seq]
	if st == nil {
		return ""
	}
	if st.Trial != nil {
		return st.Trial.Slot
	}
	return st.Committed.Slot
}

// MaxOTACommand bounds an ota/cmd payload: a command is four short fields.
const MaxOTACommand = 4096

// ParseOTACommand decodes and checks an ota/cmd payload (docs/contracts.md): one JSON object of
// OTACommandSchema, no unknown field, action "update" (or empty, the same) or "check". A typo
// must not read as a default: a misspelt "now" would wait for the window, a misspelt "target"
// would only check, and an unknown action would update.
func ParseOTACommand(raw []byte) (OTACommand, error) {
	var cmd OTACommand
	if len(raw) > MaxOTACommand {
		return cmd, fmt.Errorf("%d bytes, more than %d", len(raw), MaxOTACommand)
	}
	if err := strictjson.Decode(raw, &cmd); err != nil {
		return cmd, err
	}
	switch {
	case cmd.Schema != OTACommandSchema:
		return cmd, fmt.Errorf("schema %q, want %q", cmd.Schema, OTACommandSchema)
	case cmd.Action != "" && cmd.Action != "update" && cmd.Action != "check":
		return cmd, fmt.Errorf("action %q: want update or check", cmd.Action)
	}
	return cmd, nil
}

// otaCommand takes a command from MQTT; it never blocks the MQTT client.
func (d *Daemon) otaCommand(c mqtt.Command) {
	cmd, err := ParseOTACommand(c.Payload)
	if c.Oversize > 0 {
		err = fmt.Errorf("%d bytes, more than %d", c.Oversize, MaxOTACommand)
	}
	switch {
	case err != nil:
		d.event(Event{Type: "ota_command_refused", Detail: fmt.Sprintf("%s on %s: %v", OTACommandSchema, c.Topic, err)})
		return
	case d.ota == nil || d.ota.mgr == nil || !d.cfg.OTA.Enabled():
		d.event(Event{Type: "ota_command_refused", Detail: "over-the-air updates are off (ota.repo_url empty or models.dir without slots)"})
		return
	}
	select {
	case d.ota.trigger <- cmd:
	default:
		d.event(Event{Type: "ota_command_refused", Detail: "busy: an update is in progress"})
	}
}

// otaLoop carries commands out one at a time, runs the periodic check every
// ota.check_interval and wakes the worker while a trial runs, so that trial_minutes can end it.
func (d *Daemon) otaLoop(ctx context.Context) {
	if d.ota == nil || d.ota.mgr == nil || !d.cfg.OTA.Enabled() {
		return
	}
	check := time.NewTicker(d.checkInterval())
	defer check.Stop()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	d.publishOTAState(ota.Report{Phase: "idle"})
	for {
		select {
		case <-ctx.Done():
			return
		case cmd := <-d.ota.trigger:
			d.otaRun(ctx, cmd)
		case <-check.C:
			d.otaPeriodic(ctx)
		case <-tick.C:
			d.jobs.signal()
		}
	}
}

// checkInterval is ota.check_interval, or the tests' shorter one.
func (d *Daemon) checkInterval() time.Duration {
	if d.opts.OTACheckInterval > 0 {
		return d.opts.OTACheckInterval
	}
	return d.cfg.OTA.CheckInterval
}

func (d *Daemon) otaRun(ctx context.Context, cmd OTACommand) {
	if cmd.Action != "check" && !cmd.Now && !d.waitWindow(ctx) {
		return
	}
	targets, approved, ok := d.otaCheck(ctx, cmd.Target)
	if !ok {
		return
	}
	defer d.jobs.signal() // the worker reconciles shadows and switches
	if cmd.Action == "check" || cmd.Target == "" {
		d.setPrepared(approved)
		return
	}
	t, listed := targets[cmd.Target]
	if s := d.ota.mgr.Shadow(t.Custom.Sequence); listed && s != nil && s.Target == cmd.Target {
		if !d.setPrepared(approved) {
			d.otaReport(ota.Report{Phase: ota.PhaseShadow, Target: s.Target, Name: s.Name, Version: s.Version, Sequence: t.Custom.Sequence,
				Slot: s.Slot, Detail: "already in shadow, waiting for site approval", Err: t.Approval})
		}
		return
	}
	d.otaInstall(ctx, targets, cmd.Target)
}

// otaCheck waits until no study is processed, refreshes the verified metadata and applies
// recalls; it returns the targets and the shadows the site has approved since. false: the
// check failed (reported, alarm raised) or the daemon is stopping.
func (d *Daemon) otaCheck(ctx context.Context, target string) (map[string]ota.Target, []*ota.Prepared, bool) {
	if !d.waitIdle(ctx) {
		return nil, nil, false
	}
	targets, err := d.ota.mgr.Check()
	if err != nil {
		d.otaReport(ota.Report{Phase: ota.PhaseFailed, Target: target, Err: err})
		d.setAlarm("ota-metadata", "OTA metadata check failed: "+err.Error())
		return nil, nil, false
	}
	d.clearAlarm("ota-metadata")
	d.noteExpiry(targets)
	d.queueChanges(d.ota.mgr.Recall(targets))
	return targets, d.ota.mgr.Approved(targets), true
}

// otaInstall prepares a target (download, unpack, self-test) and hands it to the worker for
// its trial, or keeps it in shadow while the site has not approved it. false: refused or failed
// (reported by the manager).
func (d *Daemon) otaInstall(ctx context.Context, targets map[string]ota.Target, name string) bool {
	p, err := d.ota.mgr.Prepare(ctx, targets, name)
	if err != nil {
		if !errors.Is(err, ota.ErrTruncated) && ctx.Err() == nil {
			d.ota.refuse(name, targets[name])
		}
		return false
	}
	if t := targets[name]; d.cfg.OTA.RequireSiteApproval && t.Approval != nil {
		d.ota.mgr.BeginShadow(p, t.Approval)
		return true
	}
	d.setPrepared([]*ota.Prepared{p})
	return true
}

// otaPeriodic is the check every ota.check_interval without a command: recalls at once; then,
// within ota.window and while no study is processed, an approved shadow goes on trial or the
// newest target released to this box's group is installed (one per check). A target refused
// here before is not tried again until a command names it or the daemon restarts.
func (d *Daemon) otaPeriodic(ctx context.Context) {
	targets, approved, ok := d.otaCheck(ctx, "")
	if !ok || (len(approved) == 0 && len(d.candidates(targets)) == 0) {
		return
	}
	if !d.waitWindow(ctx) {
		return
	}
	if targets, approved, ok = d.otaCheck(ctx, ""); !ok { // the wait may have been long
		return
	}
	defer d.jobs.signal()
	if d.setPrepared(approved) {
		return
	}
	for _, name := range d.candidates(targets) {
		if d.otaInstall(ctx, targets, name) {
			return
		}
	}
}

// candidates are the manager's candidates less those refused before (same bytes).
func (d *Daemon) candidates(targets map[string]ota.Target) []string {
	var out []string
	for _, name := range d.ota.mgr.Candidates(targets) {
		if !d.ota.refused(name, targets[name]) {
			out = append(out, name)
		}
	}
	return out
}

func (o *otaRuntime) refuse(name string, t ota.Target) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refusedTargets[name] = fmt.Sprintf("%x", t.Want.SHA256)
}

func (o *otaRuntime) refused(name string, t ota.Target) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	sum, ok := o.refusedTargets[name]
	return ok && sum == fmt.Sprintf("%x", t.Want.SHA256)
}

// setPrepared hands the worker a bundle to switch to on trial (one at a time: the others wait
// for the next check); false when there is none.
func (d *Daemon) setPrepared(ps []*ota.Prepared) bool {
	if len(ps) == 0 {
		return false
	}
	d.ota.mu.Lock()
	d.ota.prepared = ps[0]
	d.ota.mu.Unlock()
	return true
}

// waitWindow waits for ota.window; false when shutting down.
func (d *Daemon) waitWindow(ctx context.Context) bool {
	start, end, _ := config.ParseWindow(d.cfg.OTA.Window)
	reported := false
	for !inWindow(d.now(), start, end) {
		if !reported {
			d.publishOTAState(ota.Report{Phase: "waiting", Detail: "waiting for ota.window " + d.cfg.OTA.Window})
			reported = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(30*time.Second, d.checkInterval())):
		}
	}
	return true
}

// now is the wall clock ota.window is read with (tests set Options.Clock).
func (d *Daemon) now() time.Time {
	if d.opts.Clock != nil {
		return d.opts.Clock()
	}
	return time.Now()
}

func inWindow(now time.Time, start, end int) bool {
	if start == end {
		return true
	}
	m := now.Hour()*60 + now.Minute()
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

// waitIdle waits until no job runs or waits: an update never starts while a study is processed.
func (d *Daemon) waitIdle(ctx context.Context) bool {
	for {
		d.mu.Lock()
		busy := d.runningJob != ""
		d.mu.Unlock()
		if q := d.jobs.counts(); !busy && q[JobQueued] == 0 && q[JobRunning] == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (d *Daemon) noteExpiry(targets map[string]ota.Target) {
	var exp time.Time
	for _, t := range targets {
		exp = t.Expires
	}
	d.ota.mu.Lock()
	d.ota.expires = exp
	d.ota.mu.Unlock()
	if !exp.IsZero() && time.Until(exp) < 48*time.Hour {
		d.setAlarm("ota-expiry", fmt.Sprintf("OTA metadata expires at %s; the repository must re-sign its timestamp", exp.Format(time.RFC3339)))
	} else {
		d.clearAlarm("ota-expiry")
	}
}

func (d *Daemon) queueChanges(ch []ota.Change) {
	if len(ch) == 0 {
		return
	}
	d.ota.mu.Lock()
	d.ota.pending = append(d.ota.pending, ch...)
	d.ota.mu.Unlock()
	d.jobs.signal()
}

// otaBetweenJobs is the worker's turn at OTA: it switches a prepared bundle in, applies
// rollbacks and recalls, and commits trials whose time is up. No job runs meanwhile.
func (d *Daemon) otaBetweenJobs(ctx context.Context) {
	if d.ota == nil || d.ota.mgr == nil {
		return
	}
	d.ota.mu.Lock()
	p, pending := d.ota.prepared, d.ota.pending
	d.ota.prepared, d.ota.pending = nil, nil
	d.ota.mu.Unlock()
	if p != nil {
		if ch, err := d.ota.mgr.Activate(p, time.Now()); err == nil {
			pending = append(pending, ch)
		}
	}
	pending = append(pending, d.ota.mgr.Tick(time.Now())...)
	for _, ch := range pending {
		d.swapModel(ctx, ch)
	}
	d.reconcileShadows(ctx)
}

// otaAfterJob counts a finished job against a trial of its model.
func (d *Daemon) otaAfterJob(ctx context.Context, id string) {
	if d.ota == nil || d.ota.mgr == nil {
		return
	}
	j, ok := d.jobs.get(id)
	if !ok || j.Sequence == "" || (j.State != JobDone && j.State != JobFailed) {
		return
	}
	st := d.ota.mgr.Snapshot().Sequences[j.Sequence]
	if st == nil || st.Trial == nil || j.Model != st.Trial.Name+" "+st.Trial.Version {
		return
	}
	for _, ch := range d.ota.mgr.JobResult(j.Sequence, j.State == JobDone, time.Now()) {
		d.swapModel(ctx, ch)
	}
}

// swapModel loads ch's bundle (self-test included) and replaces the sequence's model; only the
// worker calls it, between jobs, so no job holds the old model.
func (d *Daemon) swapModel(ctx context.Context, ch ota.Change) {
	d.modelsMu.RLock()
	old := d.models[ch.Sequence]
	d.modelsMu.RUnlock()
	if old != nil && old.Bundle.Dir == ch.Dir && ch.Phase == ota.PhaseCommitted {
		d.publishOTAState(ota.Report{Phase: ota.PhaseCommitted, Sequence: ch.Sequence, Name: old.Bundle.Meta.Name,
			Version: old.Bundle.Meta.Version, Slot: d.slotOf(ch.Sequence)})
		return // committing keeps the running model
	}
	m, err := pipeline.OpenModel(ctx, ch.Dir, d.engineOptions())
	if err != nil {
		d.log.Error("daemon: OTA model not loaded", "sequence", ch.Sequence, "dir", ch.Dir, "err", err)
		if ch.Phase == ota.PhaseTrial {
			for _, back := range d.ota.mgr.RollbackTrial(ch.Sequence, "trial model failed to load: "+err.Error()) {
				d.swapModel(ctx, back)
			}
		} else {
			d.setAlarm("model:"+ch.Sequence, fmt.Sprintf("model for %s not loaded after %s: %v", ch.Sequence, ch.Phase, err))
		}
		return
	}
	d.modelsMu.Lock()
	d.models[ch.Sequence] = m
	d.modelsMu.Unlock()
	if old != nil {
		old.Close()
	}
	d.log.Info("daemon: model switched", "sequence", ch.Sequence, "model", m.Bundle.Meta.Name, "version", m.Bundle.Meta.Version,
		"phase", ch.Phase, "slot", d.slotOf(ch.Sequence))
	d.publishOTAState(ota.Report{Phase: ota.Phase(ch.Phase), Sequence: ch.Sequence, Name: m.Bundle.Meta.Name,
		Version: m.Bundle.Meta.Version, Slot: d.slotOf(ch.Sequence)})
}

// otaReport turns a manager report into an `ota_<phase>` event and the retained ota/state.
func (d *Daemon) otaReport(r ota.Report) {
	name, version := r.Name, r.Version
	if name == "" {
		name = r.Target
	}
	if version == "" {
		version = "-"
	}
	detail := r.Detail
	if r.Err != nil {
		detail = r.Err.Error()
	}
	e := Event{Type: "ota_" + string(r.Phase), Detail: fmt.Sprintf("%s %s %s: %s", r.Sequence, name, version, detail)}
	e.MessageID = mqtt.MessageID(d.cfg.DeviceID, "ota", name, version, string(r.Phase))
	d.event(e)
	d.publishOTAState(r)
}

func (d *Daemon) publishOTAState(r ota.Report) {
	if d.mq == nil || d.ota == nil || d.ota.mgr == nil {
		return
	}
	s := OTAState{Schema: OTAStateSchema, DeviceID: d.cfg.DeviceID, Time: time.Now().UTC(), Phase: string(r.Phase), Target: r.Target,
		Name: r.Name, Version: r.Version, Sequence: r.Sequence, Slot: r.Slot, Detail: r.Detail, Slots: d.ota.mgr.Snapshot().Sequences}
	if r.Err != nil {
		s.Error = r.Err.Error()
	}
	d.ota.mu.Lock()
	if !d.ota.expires.IsZero() {
		exp := d.ota.expires
		s.MetadataExpires = &exp
	}
	d.ota.mu.Unlock()
	if b, err := json.Marshal(s); err == nil {
		d.mq.SetOTAState(b)
	}
}
