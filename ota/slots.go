package ota

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/atomicfile"
)

// The slot layout of models.dir (docs/contracts.md, "OTA (issue 8)"):
//
//	slots.json                  the committed and trial state (SlotsState), written crash-safely
//	<SEQ>/slot-a, <SEQ>/slot-b  one bundle each
//	<SEQ>/active                a symlink to slot-a or slot-b, replaced by rename + folder fsync
const (
	slotsFile   = "slots.json"
	SlotsSchema = "midline.slots/1"
)

// ErrNoSlots: models.dir holds bundle folders directly (a development layout); they are loaded
// as they are and over-the-air updates are off.
var ErrNoSlots = errors.New("ota: models.dir holds bundles directly, not slots")

// SlotsState is slots.json.
type SlotsState struct {
	Schema    string               `json:"schema"`
	Sequences map[string]*SeqState `json:"sequences"`
}

// SeqState is one sequence's slots. Highest is the highest version ever committed for the
// sequence: anti-rollback refuses any version not above it.
type SeqState struct {
	Committed Installed  `json:"committed"`
	Highest   string     `json:"highest_committed"`
	Previous  *Installed `json:"previous,omitempty"` // the other slot's last committed model, for a recall
	Trial     *Trial     `json:"trial,omitempty"`
	// Shadow is a verified, self-tested bundle in the inactive slot waiting for site approval:
	// it runs beside the committed model on every study, is compared, and is never sent.
	Shadow *Installed `json:"shadow,omitempty"`
}

// Installed is a bundle in a slot.
type Installed struct {
	Slot    string `json:"slot"` // "a" or "b"
	Name    string `json:"name"`
	Version string `json:"version"`
	Target  string `json:"target,omitempty"` // empty for a seeded bundle
	SHA256  string `json:"sha256,omitempty"` // the target's signed sha256 (hex), when it came over the air
	// DowngradeFrom is the highest committed version an authorised downgrade lowers.
	DowngradeFrom string `json:"downgrade_from,omitempty"`
}

// Trial is a new model on trial: it commits after trial_jobs jobs and trial_minutes minutes,
// and rolls back on a failed job, a failed self-test or too many starts without a commit.
type Trial struct {
	Installed
	Since  time.Time `json:"since"`
	Jobs   int       `json:"jobs"`
	Starts int       `json:"starts"`
}

// Slots is models.dir in slot layout.
type Slots struct {
	Dir   string
	State SlotsState
}

// OpenSlots reads models.dir's slots. An empty or missing folder is seeded first from seed
// (one bundle folder per entry), so the box starts on the shipped models, committed.
func OpenSlots(dir string, seed fs.FS) (*Slots, error) {
	s := &Slots{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, slotsFile))
	if err == nil {
		if err := json.Unmarshal(b, &s.State); err != nil || s.State.Schema != SlotsSchema {
			return nil, fmt.Errorf("ota: %s: unreadable (%v)", slotsFile, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ota: slots: %w", err)
	}
	if flat, err := hasBundles(dir); err != nil || flat {
		if err == nil {
			err = ErrNoSlots
		}
		return nil, err
	}
	return s, s.seed(seed)
}

func hasBundles(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "model.json")); err == nil {
			return true, nil
		}
	}
	return false, err
}

// seed copies every bundle of seed into slot-a of its sequence; slots.json, written last, is
// what makes the seeding count, so a crash before it seeds again.
func (s *Slots) seed(seed fs.FS) error {
	s.State = SlotsState{Schema: SlotsSchema, Sequences: map[string]*SeqState{}}
	entries, err := fs.ReadDir(seed, ".")
	if err != nil {
		return fmt.Errorf("ota: seed: %w", err)
	}
	for _, e := range entries {
		raw, err := fs.ReadFile(seed, path.Join(e.Name(), "model.json"))
		if err != nil {
			continue
		}
		meta, err := accel.ParseBundleMeta(raw)
		if err != nil {
			return fmt.Errorf("ota: seed %s: %w", e.Name(), err)
		}
		if _, dup := s.State.Sequences[meta.Sequence]; dup {
			return fmt.Errorf("ota: seed: two bundles for %s", meta.Sequence)
		}
		if err := s.resetSlot(meta.Sequence, "a"); err != nil {
			return err
		}
		if err := copyFS(seed, e.Name(), s.SlotDir(meta.Sequence, "a")); err != nil {
			return err
		}
		if err := s.link(meta.Sequence, "a"); err != nil {
			return err
		}
		s.State.Sequences[meta.Sequence] = &SeqState{Committed: Installed{Slot: "a", Name: meta.Name, Version: meta.Version},
			Highest: meta.Version}
	}
	if len(s.State.Sequences) == 0 {
		return errors.New("ota: seed: no bundle to seed models.dir with")
	}
	return s.save()
}

func copyFS(src fs.FS, from, to string) error {
	entries, err := fs.ReadDir(src, from)
	if err != nil {
		return fmt.Errorf("ota: seed: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyOne(src, path.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return fmt.Errorf("ota: seed: %w", err)
		}
	}
	return atomicfile.SyncDir(to)
}

func copyOne(src fs.FS, from, to string) error {
	in, err := src.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sequences lists the sequences with slots.
func (s *Slots) Sequences() []string {
	var out []string
	for seq := range s.State.Sequences {
		out = append(out, seq)
	}
	slices.Sort(out)
	return out
}

// SlotDir is the folder of one slot.
func (s *Slots) SlotDir(seq, slot string) string { return filepath.Join(s.Dir, seq, "slot-"+slot) }

// ActiveSlot is the slot the box runs for seq: the trial's while there is one.
func (s *Slots) ActiveSlot(seq string) string {
	st := s.State.Sequences[seq]
	if st.Trial != nil {
		return st.Trial.Slot
	}
	return st.Committed.Slot
}

// ActiveDir is the folder of the active slot (the real folder, not the symlink, so that a
// model loaded from it keeps its files whatever happens to the link).
func (s *Slots) ActiveDir(seq string) string { return s.SlotDir(seq, s.ActiveSlot(seq)) }

// Inactive is the slot an update may overwrite.
func (s *Slots) Inactive(seq string) string {
	if s.State.Sequences[seq] != nil && s.State.Sequences[seq].Committed.Slot == "a" {
		return "b"
	}
	return "a"
}

// Reconcile makes every `active` link agree with slots.json (a crash may fall between the
// state's write and the link's swap; slots.json is the truth).
func (s *Slots) Reconcile() error {
	for _, seq := range s.Sequences() {
		want := "slot-" + s.ActiveSlot(seq)
		if got, err := os.Readlink(filepath.Join(s.Dir, seq, "active")); err == nil && got == want {
			continue
		}
		if err := s.link(seq, s.ActiveSlot(seq)); err != nil {
			return err
		}
	}
	return nil
}

// link points <seq>/active at slot atomically: a new symlink renamed over the old one, then
// the folder fsynced.
func (s *Slots) link(seq, slot string) error {
	dir := filepath.Join(s.Dir, seq)
	tmp := filepath.Join(dir, ".active.tmp")
	os.Remove(tmp)
	if err := os.Symlink("slot-"+slot, tmp); err != nil {
		return fmt.Errorf("ota: switch %s: %w", seq, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "active")); err != nil {
		return fmt.Errorf("ota: switch %s: %w", seq, err)
	}
	return atomicfile.SyncDir(dir)
}

// resetSlot empties a slot folder (it is never the active one).
func (s *Slots) resetSlot(seq, slot string) error {
	d := s.SlotDir(seq, slot)
	if err := os.RemoveAll(d); err != nil {
		return fmt.Errorf("ota: slot %s/%s: %w", seq, slot, err)
	}
	if err := os.MkdirAll(d, 0o750); err != nil {
		return fmt.Errorf("ota: slot %s/%s: %w", seq, slot, err)
	}
	return atomicfile.SyncDir(filepath.Dir(d))
}

func (s *Slots) save() error {
	b, err := json.MarshalIndent(s.State, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o750); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.Dir, slotsFile), b); err != nil {
		return fmt.Errorf("ota: %s: %w", slotsFile, err)
	}
	return nil
}

// BeginTrial records a prepared slot as the trial and switches the link to it; a shadow in
// that slot becomes the trial.
func (s *Slots) BeginTrial(seq string, in Installed, now time.Time) error {
	st := s.State.Sequences[seq]
	shadow := st.Shadow
	st.Trial, st.Shadow = &Trial{Installed: in, Since: now.UTC()}, nil
	if err := s.save(); err != nil {
		st.Trial, st.Shadow = nil, shadow
		return err
	}
	return s.link(seq, in.Slot)
}

// BeginShadow records a prepared slot as the shadow of seq; the active link does not move.
func (s *Slots) BeginShadow(seq string, in Installed) error {
	st := s.State.Sequences[seq]
	st.Shadow = &in
	if err := s.save(); err != nil {
		st.Shadow = nil
		return err
	}
	return nil
}

// releaseInactive forgets what the inactive slot of seq holds (the previous committed model and
// any shadow) before it is overwritten, so that slots.json never names a slot whose files are
// gone.
func (s *Slots) releaseInactive(seq string) error {
	st := s.State.Sequences[seq]
	if st.Previous == nil && st.Shadow == nil {
		return nil
	}
	st.Previous, st.Shadow = nil, nil
	return s.save()
}

// Commit keeps the trial: it becomes the committed model, the one it replaced is kept as the
// previous, and Highest rises. An authorised downgrade lowers Highest to its own version
// instead, which spends the authorisation (it names the old Highest), and keeps no previous:
// the model it deliberately replaced must not come back by a recall.
func (s *Slots) Commit(seq string) error {
	st := s.State.Sequences[seq]
	if st.Trial == nil {
		return nil
	}
	prev := st.Committed
	st.Previous, st.Committed, st.Trial = &prev, st.Trial.Installed, nil
	switch {
	case st.Committed.DowngradeFrom != "" && st.Committed.DowngradeFrom == st.Highest:
		st.Highest, st.Previous = st.Committed.Version, nil
	case CompareVersions(st.Committed.Version, st.Highest) > 0:
		st.Highest = st.Committed.Version
	}
	return s.save()
}

// Rollback ends a trial and switches back to the committed slot.
func (s *Slots) Rollback(seq string) error {
	st := s.State.Sequences[seq]
	st.Trial = nil
	if err := s.save(); err != nil {
		return err
	}
	return s.link(seq, st.Committed.Slot)
}

// Revert returns a recalled committed model to the previous committed one (a signed recall
// authorises it; Highest does not move, so the recalled version is never installed again).
func (s *Slots) Revert(seq string) (bool, error) {
	st := s.State.Sequences[seq]
	if st.Previous == nil || st.Trial != nil {
		return false, nil
	}
	st.Committed, st.Previous = *st.Previous, nil
	if err := s.save(); err != nil {
		return false, err
	}
	return true, s.link(seq, st.Committed.Slot)
}

// RolledTrial is a trial CountStart rolled back: its sequence and bundle.
type RolledTrial struct {
	Sequence string
	Installed
}

// CountStart records one more start on each trial; a trial started more than maxStarts times
// without a commit is a crash loop and rolls back. It returns the trials rolled back, in
// sequence order.
func (s *Slots) CountStart(maxStarts int) ([]RolledTrial, error) {
	var rolled []RolledTrial
	for _, seq := range s.Sequences() {
		st := s.State.Sequences[seq]
		if st.Trial == nil {
			continue
		}
		st.Trial.Starts++
		if st.Trial.Starts > maxStarts {
			rolled = append(rolled, RolledTrial{Sequence: seq, Installed: st.Trial.Installed})
			st.Trial = nil
		}
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	return rolled, s.Reconcile()
}
