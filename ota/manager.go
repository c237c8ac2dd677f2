package ota

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/atomicfile"
)

// Phase names one step of an update, as ota/state and the `ota_<phase>` events report it.
type Phase string

// The phases, in order; rejected, failed, rolled_back and reverted end an update.
const (
	PhaseChecking    Phase = "checking"
	PhaseDownloading Phase = "downloading"
	PhaseUnpacking   Phase = "unpacking"
	PhaseSelfTest    Phase = "self_test"
	PhaseReady       Phase = "ready"  // self-tested in the inactive slot, waiting for the worker
	PhaseShadow      Phase = "shadow" // self-tested, run beside the committed model until the site approves it
	PhaseTrial       Phase = "trial"
	PhaseCommitted   Phase = "committed"
	PhaseRolledBack  Phase = "rolled_back"
	PhaseReverted    Phase = "reverted" // a recalled committed model replaced by the previous one
	PhaseRejected    Phase = "rejected"
	PhaseFailed      Phase = "failed" // could not be carried out now (network, disk); may be retried
)

// Reasons an update is rejected; each wraps into the report's error.
var (
	ErrNotReleased = errors.New("target not released to this box's group")
	ErrWithdrawn   = errors.New("target withdrawn")
	ErrDowngrade   = errors.New("version not above the highest committed for its sequence")
	ErrSequence    = errors.New("wrong sequence")
	ErrEngine      = errors.New("engine not supported by the bundle")
	ErrFirmware    = errors.New("bundle needs a newer firmware")
	ErrBusy        = errors.New("another model of this sequence is on trial")
	ErrMismatch    = errors.New("bundle's model.json differs from its signed metadata")
	ErrNoSpace     = errors.New("state folder full")
)

// Report is one phase of one update.
type Report struct {
	Phase    Phase
	Target   string
	Name     string
	Version  string
	Sequence string
	Slot     string
	Detail   string
	Err      error
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	Trust           Trust
	StateDir        string // staging in state_dir/ota/staging
	Group           string
	Engine          accel.Options
	FirmwareVersion string
	TrialJobs       int
	TrialTime       time.Duration
	MaxStarts       int   // starts on a trial without a commit before it rolls back (default 3)
	MaxBundleBytes  int64 // default 512 MiB
	// RequireSiteApproval (ota.require_site_approval): a downgrade needs the site's signature too.
	RequireSiteApproval bool
	Report              func(Report)
	// Failpoint is called at every phase boundary with its name (tests kill the process there).
	Failpoint func(name string)
}

// Manager carries updates through the slots. Prepare may run beside jobs (it never touches the
// active slot); Activate, JobResult, Tick and Recall change what runs and are called by the job
// worker between jobs.
type Manager struct {
	o     ManagerOptions
	mu    sync.Mutex
	slots *Slots
}

// Change tells the worker which sequence now runs another bundle, from which folder.
type Change struct {
	Sequence string
	Dir      string
	Phase    Phase
}

// NewManager opens a manager on slots; it counts this start against any trial and rolls back
// crash loops (the returned changes are already applied to the slots).
func NewManager(s *Slots, o ManagerOptions) (*Manager, []string, error) {
	if o.MaxStarts == 0 {
		o.MaxStarts = 3
	}
	if o.MaxBundleBytes == 0 {
		o.MaxBundleBytes = 512 << 20
	}
	if o.Report == nil {
		o.Report = func(Report) {}
	}
	if o.Failpoint == nil {
		o.Failpoint = func(string) {}
	}
	m := &Manager{o: o, slots: s}
	rolled, err := s.CountStart(o.MaxStarts)
	var seqs []string
	for _, t := range rolled { // the report names the trial rolled back, like every rollback's
		c := s.State.Sequences[t.Sequence].Committed
		o.Report(Report{Phase: PhaseRolledBack, Target: t.Target, Name: t.Name, Version: t.Version, Sequence: t.Sequence, Slot: c.Slot,
			Detail: fmt.Sprintf("crash loop: more than %d starts on trial without a commit; back on %s %s", o.MaxStarts, c.Name, c.Version)})
		seqs = append(seqs, t.Sequence)
	}
	return m, seqs, err
}

// Slots returns a copy of the slots' state.
func (m *Manager) Snapshot() SlotsState {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := SlotsState{Schema: m.slots.State.Schema, Sequences: map[string]*SeqState{}}
	for k, v := range m.slots.State.Sequences {
		c := *v
		if v.Trial != nil {
			t := *v.Trial
			c.Trial = &t
		}
		out.Sequences[k] = &c
	}
	return out
}

// ActiveDir is the folder the box runs for seq.
func (m *Manager) ActiveDir(seq string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slots.ActiveDir(seq)
}

// Prepared is a verified, unpacked, self-tested bundle in an inactive slot.
type Prepared struct {
	Sequence string
	Installed
}

// Check refreshes the metadata; it is the step every update and recall check starts with.
func (m *Manager) Check() (map[string]Target, error) {
	return Refresh(m.o.Trust)
}

// Prepare carries target from the repository into the inactive slot of its sequence and
// self-tests it there; the running model is not touched. Every refusal is reported and
// returned.
func (m *Manager) Prepare(ctx context.Context, targets map[string]Target, name string) (*Prepared, error) {
	r := Report{Target: name}
	fail := func(phase Phase, err error) (*Prepared, error) {
		r.Phase, r.Err = phase, err
		m.o.Report(r)
		return nil, err
	}
	t, ok := targets[name]
	if !ok || !t.Custom.ReleasedTo(m.o.Group) {
		return fail(PhaseRejected, fmt.Errorf("%s: %w", name, ErrNotReleased))
	}
	c := t.Custom
	r.Name, r.Version, r.Sequence = c.Name, c.Version, c.Sequence
	slot, downgradeFrom, err := m.admit(t)
	if err != nil {
		return fail(PhaseRejected, err)
	}
	r.Slot = slot
	m.o.Failpoint("checked")
	r.Phase, r.Detail = PhaseDownloading, fmt.Sprintf("%d bytes", t.Want.Length)
	m.o.Report(r)
	staging := filepath.Join(m.o.StateDir, "ota", "staging")
	if err := roomFor(staging, t.Want.Length); err != nil {
		return fail(PhaseRejected, err)
	}
	staged, err := Fetch(ctx, m.httpClient(), t.URL, staging, t.Want, m.o.MaxBundleBytes)
	if err != nil {
		if isNoSpace(err) {
			clearStaging(staging)
			return fail(PhaseRejected, fmt.Errorf("%w while downloading: %v", ErrNoSpace, err))
		}
		if errors.Is(err, ErrTruncated) || ctx.Err() != nil {
			return fail(PhaseFailed, err)
		}
		return fail(PhaseRejected, err)
	}
	m.o.Failpoint("downloaded")
	r.Phase, r.Detail = PhaseUnpacking, ""
	m.o.Report(r)
	if err := m.unpack(staged, c.Sequence, slot); err != nil {
		if isNoSpace(err) {
			m.slots.resetSlot(c.Sequence, slot) // give the space back; the slot is inactive
			clearStaging(staging)
			err = fmt.Errorf("%w while unpacking: %v", ErrNoSpace, err)
		}
		return fail(PhaseRejected, err)
	}
	m.o.Failpoint("unpacked")
	r.Phase = PhaseSelfTest
	m.o.Report(r)
	if err := m.selfTest(ctx, m.slots.SlotDir(c.Sequence, slot), c); err != nil {
		return fail(PhaseRejected, err)
	}
	m.o.Failpoint("self_tested")
	os.Remove(staged)
	r.Phase = PhaseReady
	m.o.Report(r)
	return &Prepared{Sequence: c.Sequence, Installed: Installed{Slot: slot, Name: c.Name, Version: c.Version, Target: name,
		SHA256: fmt.Sprintf("%x", t.Want.SHA256), DowngradeFrom: downgradeFrom}}, nil
}

func (m *Manager) httpClient() *http.Client {
	if m.o.Trust.HTTP != nil {
		return m.o.Trust.HTTP
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

// admit applies the signed metadata's rules before a byte is downloaded; it returns the slot
// the bundle goes to and, for an authorised downgrade, the highest committed version it lowers.
func (m *Manager) admit(t Target) (slot, downgradeFrom string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := t.Custom
	st, ok := m.slots.State.Sequences[c.Sequence]
	switch {
	case c.Withdrawn:
		return "", "", ErrWithdrawn
	case !ok:
		return "", "", fmt.Errorf("%w: this box has no %s slot", ErrSequence, c.Sequence)
	case st.Trial != nil:
		return "", "", ErrBusy
	case !slices.Contains(c.Engines, string(engineOf(m.o.Engine))):
		return "", "", fmt.Errorf("%w: %s needs one of %v", ErrEngine, engineOf(m.o.Engine), c.Engines)
	case !FirmwareMeets(m.o.FirmwareVersion, c.MinFirmware):
		return "", "", fmt.Errorf("%w: %s < %s", ErrFirmware, m.o.FirmwareVersion, c.MinFirmware)
	case CompareVersions(c.Version, st.Highest) > 0:
		return m.slots.Inactive(c.Sequence), "", nil
	}
	if err := m.authorisedDowngrade(t, st); err != nil {
		return "", "", err
	}
	return m.slots.Inactive(c.Sequence), st.Highest, nil
}

// authorisedDowngrade is anti-rollback's one exception: a version not above the highest
// committed is admitted only when signed metadata authorises exactly this step. The target's
// custom metadata (signed by the targets role) lists the box's highest committed version in
// downgrade_from, the bundle is the committed model's name, and with site approval required
// the site key's approval of these very bytes lists that version too.
func (m *Manager) authorisedDowngrade(t Target, st *SeqState) error {
	c := t.Custom
	switch {
	case !slices.Contains(c.DowngradeFrom, st.Highest):
		return fmt.Errorf("%w: %s is not above %s, and no signed downgrade authorisation from %s", ErrDowngrade, c.Version,
			st.Highest, st.Highest)
	case c.Name != st.Committed.Name:
		return fmt.Errorf("%w: the downgrade authorisation is for %s, this box runs %s", ErrDowngrade, c.Name, st.Committed.Name)
	case m.o.RequireSiteApproval && t.Approval != nil:
		return fmt.Errorf("%w: the downgrade to %s needs the site's approval: %v", ErrDowngrade, c.Version, t.Approval)
	case m.o.RequireSiteApproval && !slices.Contains(t.Site.DowngradeFrom, st.Highest):
		return fmt.Errorf("%w: the site's approval of %s does not authorise the downgrade from %s", ErrDowngrade, t.Name, st.Highest)
	}
	return nil
}

func parseable(v string) bool { _, ok := parseSemver(v); return ok }

// FirmwareMeets says whether a firmware version runs bundles that need minFirmware: its release
// part, without pre-release suffix or build metadata, is not below it. A firmware version that
// is not a semantic version (a test's) is not compared.
func FirmwareMeets(firmware, minFirmware string) bool {
	fw := withoutBuild(firmware)
	return !parseable(fw) || CompareVersions(releaseOf(fw), minFirmware) >= 0
}

// withoutBuild drops semantic versioning's build metadata ("+g1a2b3c4d5e6f", which make adds to
// a development build's version): it has no bearing on precedence.
func withoutBuild(v string) string {
	v, _, _ = strings.Cut(v, "+")
	return v
}

// releaseOf drops a pre-release suffix: a build of 0.2.0-rc1 (or a test build) runs bundles
// that need 0.2.0.
func releaseOf(v string) string {
	p, _ := parseSemver(v)
	return fmt.Sprintf("%d.%d.%d", p.n[0], p.n[1], p.n[2])
}

func engineOf(o accel.Options) accel.Kind {
	if o.Engine == "" {
		return accel.CPU
	}
	return o.Engine
}

func (m *Manager) unpack(staged, seq, slot string) error {
	m.mu.Lock()
	err := m.slots.releaseInactive(seq)
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if err := m.slots.resetSlot(seq, slot); err != nil {
		return err
	}
	f, err := os.Open(staged)
	if err != nil {
		return err
	}
	defer f.Close()
	dir := m.slots.SlotDir(seq, slot)
	if err := Unpack(f, dir, Limits{}); err != nil {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// selfTest loads the bundle in the configured engine (tensor specs checked against model.json)
// and runs its self-test input against the recorded output hash.
func (m *Manager) selfTest(ctx context.Context, dir string, c Custom) error {
	b, err := accel.LoadBundle(dir)
	if err != nil {
		return err
	}
	if b.Meta.Name != c.Name || b.Meta.Version != c.Version || b.Meta.Sequence != c.Sequence {
		return fmt.Errorf("%w: model.json %s %s %s, metadata %s %s %s", ErrMismatch, b.Meta.Name, b.Meta.Version,
			b.Meta.Sequence, c.Name, c.Version, c.Sequence)
	}
	model, err := b.Open(m.o.Engine)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEngine, err)
	}
	defer model.Close()
	return b.SelfTest(ctx, model)
}

// Activate switches seq to the prepared slot on trial. Call it between jobs.
func (m *Manager) Activate(p *Prepared, now time.Time) (Change, error) {
	m.mu.Lock()
	err := m.slots.BeginTrial(p.Sequence, p.Installed, now)
	m.mu.Unlock()
	r := Report{Phase: PhaseTrial, Target: p.Target, Name: p.Name, Version: p.Version, Sequence: p.Sequence, Slot: p.Slot,
		Detail: fmt.Sprintf("on trial for %d jobs and %s", m.o.TrialJobs, m.o.TrialTime)}
	if err != nil {
		r.Phase, r.Err = PhaseFailed, err
		m.o.Report(r)
		return Change{}, err
	}
	m.o.Failpoint("switched")
	m.o.Report(r)
	return Change{Sequence: p.Sequence, Dir: m.slots.SlotDir(p.Sequence, p.Slot), Phase: PhaseTrial}, nil
}

// JobResult counts a finished job of seq against its trial: a failed job rolls the trial back,
// a good one may complete it. Call it between jobs.
func (m *Manager) JobResult(seq string, ok bool, now time.Time) []Change {
	m.mu.Lock()
	st := m.slots.State.Sequences[seq]
	if st == nil || st.Trial == nil {
		m.mu.Unlock()
		return nil
	}
	if !ok {
		m.mu.Unlock()
		return m.rollback(seq, "a job failed on the trial model")
	}
	st.Trial.Jobs++
	err := m.slots.save()
	m.mu.Unlock()
	if err != nil {
		return nil
	}
	return m.Tick(now)
}

// RollbackTrial ends seq's trial, e.g. when the trial model does not load at start.
func (m *Manager) RollbackTrial(seq, why string) []Change { return m.rollback(seq, why) }

func (m *Manager) rollback(seq, why string) []Change {
	m.mu.Lock()
	st := m.slots.State.Sequences[seq]
	if st == nil || st.Trial == nil {
		m.mu.Unlock()
		return nil
	}
	t := st.Trial.Installed
	err := m.slots.Rollback(seq)
	dir := m.slots.ActiveDir(seq)
	m.mu.Unlock()
	r := Report{Phase: PhaseRolledBack, Target: t.Target, Name: t.Name, Version: t.Version, Sequence: seq, Slot: st.Committed.Slot,
		Detail: why + "; back on " + st.Committed.Name + " " + st.Committed.Version, Err: err}
	m.o.Report(r)
	return []Change{{Sequence: seq, Dir: dir, Phase: PhaseRolledBack}}
}

// Tick commits trials that have met both trial_jobs and trial_minutes.
func (m *Manager) Tick(now time.Time) []Change {
	var reports []Report
	defer func() { // reported after the lock: a report may read the state
		for _, r := range reports {
			m.o.Report(r)
		}
	}()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Change
	for _, seq := range m.slots.Sequences() {
		st := m.slots.State.Sequences[seq]
		if st.Trial == nil || st.Trial.Jobs < m.o.TrialJobs || now.Sub(st.Trial.Since) < m.o.TrialTime {
			continue
		}
		t := st.Trial.Installed
		err := m.slots.Commit(seq)
		if err == nil {
			m.o.Failpoint("committed")
		}
		r := Report{Phase: PhaseCommitted, Target: t.Target, Name: t.Name, Version: t.Version, Sequence: seq, Slot: t.Slot, Err: err}
		if err != nil {
			r.Phase = PhaseFailed
		}
		reports = append(reports, r)
		out = append(out, Change{Sequence: seq, Dir: m.slots.ActiveDir(seq), Phase: r.Phase})
	}
	return out
}

// Recall applies withdrawals from verified metadata: a trial of a withdrawn target rolls back,
// a committed withdrawn target returns to the previous committed model. Call it between jobs.
func (m *Manager) Recall(targets map[string]Target) []Change {
	var out []Change
	for _, seq := range m.slotsSequences() {
		m.mu.Lock()
		st := m.slots.State.Sequences[seq]
		trial, committed := st.Trial, st.Committed
		m.mu.Unlock()
		if trial != nil && targets[trial.Target].Custom.Withdrawn {
			out = append(out, m.rollback(seq, "recalled: "+trial.Target+" is withdrawn")...)
			continue
		}
		if committed.Target == "" || !targets[committed.Target].Custom.Withdrawn {
			continue
		}
		m.mu.Lock()
		ok, err := m.slots.Revert(seq)
		now := m.slots.State.Sequences[seq].Committed
		dir := m.slots.ActiveDir(seq)
		m.mu.Unlock()
		r := Report{Phase: PhaseReverted, Target: committed.Target, Name: committed.Name, Version: committed.Version, Sequence: seq,
			Slot: now.Slot, Detail: "recalled; back on " + now.Name + " " + now.Version, Err: err}
		if !ok {
			r.Phase, r.Detail = PhaseFailed, "recalled, but no previous committed model is kept; still running it"
		}
		m.o.Report(r)
		if ok && err == nil {
			out = append(out, Change{Sequence: seq, Dir: dir, Phase: PhaseReverted})
		}
	}
	return out
}

func (m *Manager) slotsSequences() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slots.Sequences()
}

// Candidates are the targets a periodic check would install, at most one per sequence with
// slots (the newest admissible version released to the box's group, by Prepare's own rules
// before download), in sequence order. A target already waiting in shadow is left out, so a
// check does not download it again.
func (m *Manager) Candidates(targets map[string]Target) []string {
	best := map[string]Target{}
	for _, t := range targets {
		if !t.Custom.ReleasedTo(m.o.Group) || m.inShadow(t) {
			continue
		}
		if _, _, err := m.admit(t); err != nil {
			continue
		}
		seq := t.Custom.Sequence
		if b, ok := best[seq]; !ok || CompareVersions(t.Custom.Version, b.Custom.Version) > 0 ||
			(t.Custom.Version == b.Custom.Version && t.Name < b.Name) {
			best[seq] = t
		}
	}
	out := make([]string, 0, len(best))
	for _, seq := range slices.Sorted(maps.Keys(best)) {
		out = append(out, best[seq].Name)
	}
	return out
}

func (m *Manager) inShadow(t Target) bool {
	s := m.Shadow(t.Custom.Sequence)
	return s != nil && s.Target == t.Name && s.SHA256 == fmt.Sprintf("%x", t.Want.SHA256)
}
