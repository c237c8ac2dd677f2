package ota

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Shadow mode (docs/contracts.md, "OTA (issue 8)"): with site approval required, a verified,
// self-tested bundle waits in the inactive slot as the sequence's shadow. The daemon runs it
// beside the committed model and compares; it becomes a trial only once the site approved
// exactly its bytes.

// BeginShadow records p as its sequence's shadow; why says what it waits for.
func (m *Manager) BeginShadow(p *Prepared, why error) error {
	m.mu.Lock()
	err := m.slots.BeginShadow(p.Sequence, p.Installed)
	committed := m.slots.State.Sequences[p.Sequence].Committed
	m.mu.Unlock()
	r := Report{Phase: PhaseShadow, Target: p.Target, Name: p.Name, Version: p.Version, Sequence: p.Sequence, Slot: p.Slot,
		Detail: fmt.Sprintf("in shadow beside %s %s: run on every %s study and compared, never sent, until the site approves it (%v)",
			committed.Name, committed.Version, p.Sequence, why)}
	if err != nil {
		r.Phase, r.Err = PhaseFailed, err
	}
	m.o.Report(r)
	return err
}

// Shadow is seq's shadow bundle, or nil.
func (m *Manager) Shadow(seq string) *Installed {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.slots.State.Sequences[seq]
	if st == nil || st.Shadow == nil {
		return nil
	}
	s := *st.Shadow
	return &s
}

// ShadowDir is the folder of seq's shadow bundle ("" without one).
func (m *Manager) ShadowDir(seq string) string {
	if s := m.Shadow(seq); s != nil {
		return m.slots.SlotDir(seq, s.Slot)
	}
	return ""
}

// EndShadow drops seq's shadow (withdrawn, failed to load); the running model is not touched.
func (m *Manager) EndShadow(seq, why string) {
	m.mu.Lock()
	st := m.slots.State.Sequences[seq]
	if st == nil || st.Shadow == nil {
		m.mu.Unlock()
		return
	}
	s := *st.Shadow
	st.Shadow = nil
	err := m.slots.save()
	m.mu.Unlock()
	m.o.Report(Report{Phase: PhaseRejected, Target: s.Target, Name: s.Name, Version: s.Version, Sequence: seq, Slot: s.Slot,
		Detail: "shadow ended: " + why, Err: err})
}

// Approved returns the shadows that the verified metadata now approves, ready to activate (the
// approval must cover the very bytes the shadow was unpacked from); shadows of withdrawn or
// vanished targets end. Call it after Check.
func (m *Manager) Approved(targets map[string]Target) []*Prepared {
	var out []*Prepared
	for _, seq := range m.slotsSequences() {
		s := m.Shadow(seq)
		if s == nil {
			continue
		}
		t, ok := targets[s.Target]
		switch {
		case !ok || t.Custom.Withdrawn:
			m.EndShadow(seq, s.Target+" is withdrawn or no longer listed")
		case t.Approval == nil && fmt.Sprintf("%x", t.Want.SHA256) == s.SHA256:
			out = append(out, &Prepared{Sequence: seq, Installed: *s})
		}
	}
	return out
}

// roomFor refuses a download the state folder has no room for (its signed length).
func roomFor(dir string, length int64) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("%w: %v", ErrNoSpace, err)
		}
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // unknown: let the download find out
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < length {
		return fmt.Errorf("%w: %d bytes free, the download needs %d", ErrNoSpace, free, length)
	}
	return nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "no space left on device")
}

// clearStaging removes partial and finished downloads, giving their space back.
func clearStaging(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}
