package netdicom

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// EventKind says what happened to a series.
type EventKind string

// Series events.
const (
	// SeriesReady: the series is complete as far as the receiver can tell; process it.
	SeriesReady EventKind = "series_ready"
	// SeriesReopened: an instance arrived after the series was ready. The series waits for
	// quiet again, and its next SeriesReady supersedes the earlier one.
	SeriesReopened EventKind = "series_reopened"
)

// Reasons a series became ready.
const (
	ReadyQuiet   = "quiet"   // no new instance for dicom.series_timeout
	ReadyCount   = "count"   // as many instances as ImagesInAcquisition says
	ReadyRelease = "release" // the delivering association was released and ReleaseGrace passed
	ReadyRestart = "restart" // found unprocessed in the spool after a restart, then quiet
)

// SeriesEvent reports a change in a series' state.
type SeriesEvent struct {
	Kind            EventKind
	SeriesUID       string
	Generation      int // 1 for the first release of a series, +1 for each re-release
	Supersedes      int // the generation this one replaces, 0 if none
	Reason          string
	Paths           []string // stored files, sorted by instance number then SOP Instance UID
	SOPInstanceUIDs []string
}

// The late-instance rule: an instance of a series that was already released re-opens it
// (SeriesReopened); the series is released again by the same rules with the next generation,
// and that SeriesReady supersedes the previous one. A re-sent identical instance changes nothing.
// A series is never released twice with the same instances.

type seriesState struct {
	uid        string
	insts      map[string]Instance // by SOP Instance UID
	last       time.Time
	expected   int
	perAssoc   map[uint64]int
	lastAssoc  uint64
	releaseAt  time.Time // zero: no release hint
	open       bool
	generation int    // last released generation
	digest     string // of the last released instance set
	reason     string // pending reason override (restart)
	multiFrame bool   // holds a multi-frame instance (Enhanced MR): the release hint applies at once
}

// Assembler groups stored instances into series. It is a passive state machine: callers pass
// the time, so that tests drive it with a fake clock.
type Assembler struct {
	timeout      time.Duration
	releaseGrace time.Duration
	series       map[string]*seriesState
}

// NewAssembler makes an assembler with a quiet period and a release grace (the wait after the
// delivering association's release, at most the quiet period).
func NewAssembler(timeout, releaseGrace time.Duration) *Assembler {
	return &Assembler{timeout: timeout, releaseGrace: min(releaseGrace, timeout), series: map[string]*seriesState{}}
}

// Add records a stored instance that arrived on association assoc. Set-aside instances are not
// assembled. It returns events due at once (a re-open, or readiness by count).
func (a *Assembler) Add(inst Instance, assoc uint64, now time.Time) []SeriesEvent {
	if inst.Aside {
		return nil
	}
	uid := inst.Head.SeriesInstanceUID
	s := a.series[uid]
	if s == nil {
		s = &seriesState{uid: uid, insts: map[string]Instance{}, perAssoc: map[uint64]int{}}
		a.series[uid] = s
	}
	var evs []SeriesEvent
	if _, known := s.insts[inst.Head.SOPInstanceUID]; known && inst.Duplicate {
		return nil // an identical re-send: the spool kept its copy, nothing changed
	}
	s.insts[inst.Head.SOPInstanceUID] = inst
	if !s.open {
		s.open = true
		if s.generation > 0 {
			evs = append(evs, SeriesEvent{Kind: SeriesReopened, SeriesUID: uid, Generation: s.generation, Reason: "late instance"})
		}
	}
	s.last, s.lastAssoc, s.releaseAt = now, assoc, time.Time{}
	s.perAssoc[assoc]++
	if n := inst.Head.ImagesInAcquisition; n > 0 {
		s.expected = n
	}
	if inst.Head.NumberOfFrames > 1 {
		s.multiFrame = true
	}
	if s.expected > 0 && len(s.insts) >= s.expected {
		evs = append(evs, a.release(s, ReadyCount))
	}
	return evs
}

// AssociationEnded gives the release hint: when the association that delivered a series' last
// instance ends with A-RELEASE having sent more than one instance of it, or any multi-frame
// instance (NumberOfFrames > 1: an Enhanced MR series is usually one instance), the series is
// released after ReleaseGrace unless another instance arrives. An abort gives no hint. Senders
// that use one association per single-frame instance therefore wait for the quiet period.
func (a *Assembler) AssociationEnded(assoc uint64, released bool, now time.Time) {
	for _, s := range a.series {
		n := s.perAssoc[assoc]
		delete(s.perAssoc, assoc)
		if released && s.open && s.lastAssoc == assoc && (n > 1 || n == 1 && s.multiFrame) {
			s.releaseAt = now.Add(a.releaseGrace)
		}
	}
}

// Due returns the series that became ready by now.
func (a *Assembler) Due(now time.Time) []SeriesEvent {
	var evs []SeriesEvent
	for _, uid := range slices.Sorted(maps.Keys(a.series)) {
		s := a.series[uid]
		if !s.open {
			continue
		}
		switch {
		case !now.Before(s.last.Add(a.timeout)):
			reason := ReadyQuiet
			if s.reason != "" {
				reason = s.reason
			}
			evs = append(evs, a.release(s, reason))
		case !s.releaseAt.IsZero() && !now.Before(s.releaseAt):
			evs = append(evs, a.release(s, ReadyRelease))
		}
	}
	return evs
}

// Next returns the earliest time at which Due may return something.
func (a *Assembler) Next() (time.Time, bool) {
	var next time.Time
	for _, s := range a.series {
		if !s.open {
			continue
		}
		t := s.last.Add(a.timeout)
		if !s.releaseAt.IsZero() && s.releaseAt.Before(t) {
			t = s.releaseAt
		}
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next, !next.IsZero()
}

func (a *Assembler) release(s *seriesState, reason string) SeriesEvent {
	ev := SeriesEvent{Kind: SeriesReady, SeriesUID: s.uid, Reason: reason}
	insts := slices.Collect(maps.Values(s.insts))
	slices.SortFunc(insts, func(x, y Instance) int {
		if x.Head.InstanceNumber != y.Head.InstanceNumber {
			return x.Head.InstanceNumber - y.Head.InstanceNumber
		}
		return strings.Compare(x.Head.SOPInstanceUID, y.Head.SOPInstanceUID)
	})
	for _, in := range insts {
		ev.Paths = append(ev.Paths, in.Path)
		ev.SOPInstanceUIDs = append(ev.SOPInstanceUIDs, in.Head.SOPInstanceUID)
	}
	s.open, s.releaseAt, s.reason = false, time.Time{}, ""
	ev.Supersedes = s.generation
	s.generation++
	ev.Generation = s.generation
	s.digest = instanceDigest(ev.SOPInstanceUIDs)
	return ev
}

// Restore rebuilds the assembler after a restart from the spool's instances and the processed
// marks: a series processed with exactly its current instances stays closed; any other series
// waits a quiet period from now and is then released once (reason "restart").
func (a *Assembler) Restore(insts []Instance, processed map[string]processedState, now time.Time) {
	for _, in := range insts {
		if in.Aside {
			continue
		}
		uid := in.Head.SeriesInstanceUID
		s := a.series[uid]
		if s == nil {
			s = &seriesState{uid: uid, insts: map[string]Instance{}, perAssoc: map[uint64]int{}}
			a.series[uid] = s
		}
		s.insts[in.Head.SOPInstanceUID] = in
	}
	for uid, s := range a.series {
		var sops []string
		for k := range s.insts {
			sops = append(sops, k)
		}
		ps, ok := processed[uid]
		if ok {
			s.generation = ps.Generation
		}
		if ok && ps.Digest == instanceDigest(sops) {
			s.digest = ps.Digest
			continue
		}
		s.open, s.last, s.reason = true, now, ReadyRestart
	}
}
