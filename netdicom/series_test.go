package netdicom

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)

func inst(series string, n, count int) Instance {
	sop := series + "." + string(rune('0'+n))
	return Instance{Path: "/spool/" + sop + ".dcm", Head: HeadInfo{SeriesInstanceUID: series, SOPInstanceUID: sop, InstanceNumber: n, ImagesInAcquisition: count}}
}

func kinds(evs []SeriesEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind)+"/"+e.Reason)
	}
	return out
}

func TestAssemblerRules(t *testing.T) {
	const timeout, grace = 10 * time.Second, time.Second
	type step struct {
		at      time.Duration
		add     *Instance
		assoc   uint64
		ended   bool // association assoc ended
		release bool // ... by A-RELEASE (else abort)
		due     bool
		want    []string
	}
	a1, a2, a3, a4 := inst("1.1", 1, 0), inst("1.1", 2, 0), inst("1.1", 3, 0), inst("1.1", 4, 0)
	c1, c2, c3 := inst("1.2", 1, 3), inst("1.2", 2, 3), inst("1.2", 3, 3)
	dup := a1
	dup.Duplicate = true
	enh := inst("1.3", 1, 0)
	enh.Head.NumberOfFrames = 120
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"quiet period", []step{
			{at: 0, add: &a1, assoc: 1}, {at: 2 * time.Second, add: &a2, assoc: 1},
			{at: 11999 * time.Millisecond, due: true},
			{at: 12 * time.Second, due: true, want: []string{"series_ready/quiet"}},
			{at: 60 * time.Second, due: true},
		}},
		{"count hint", []step{
			{at: 0, add: &c1, assoc: 1}, {at: 1, add: &c2, assoc: 1},
			{at: 2, add: &c3, assoc: 1, want: []string{"series_ready/count"}},
			{at: time.Minute, due: true},
		}},
		{"release hint", []step{
			{at: 0, add: &a1, assoc: 1}, {at: 1, add: &a2, assoc: 1},
			{at: 2 * time.Second, assoc: 1, ended: true, release: true},
			{at: 2*time.Second + grace - 1, due: true},
			{at: 2*time.Second + grace, due: true, want: []string{"series_ready/release"}},
		}},
		{"abort gives no hint", []step{
			{at: 0, add: &a1, assoc: 1}, {at: 1, add: &a2, assoc: 1},
			{at: 2 * time.Second, assoc: 1, ended: true},
			{at: 5 * time.Second, due: true},
			{at: 10*time.Second + 1, due: true, want: []string{"series_ready/quiet"}},
		}},
		{"one instance per association waits for quiet", []step{
			{at: 0, add: &a1, assoc: 1}, {at: 0, assoc: 1, ended: true, release: true},
			{at: 5 * time.Second, due: true},
			{at: 10 * time.Second, due: true, want: []string{"series_ready/quiet"}},
		}},
		{"multi-frame instance gets the release hint alone", []step{
			{at: 0, add: &enh, assoc: 1}, {at: time.Second, assoc: 1, ended: true, release: true},
			{at: 2 * time.Second, due: true, want: []string{"series_ready/release"}},
		}},
		{"late instance re-opens and supersedes", []step{
			{at: 0, add: &a1, assoc: 1}, {at: 1, add: &a2, assoc: 1},
			{at: 20 * time.Second, due: true, want: []string{"series_ready/quiet"}},
			{at: 30 * time.Second, add: &a3, assoc: 2, want: []string{"series_reopened/late instance"}},
			{at: 35 * time.Second, add: &a4, assoc: 2},
			{at: 45 * time.Second, due: true, want: []string{"series_ready/quiet"}},
		}},
		{"identical re-send after release changes nothing", []step{
			{at: 0, add: &a1, assoc: 1},
			{at: 20 * time.Second, due: true, want: []string{"series_ready/quiet"}},
			{at: 30 * time.Second, add: &dup, assoc: 2},
			{at: time.Minute, due: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAssembler(timeout, grace)
			var all []SeriesEvent
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				var evs []SeriesEvent
				switch {
				case s.add != nil:
					evs = a.Add(*s.add, s.assoc, now)
				case s.ended:
					a.AssociationEnded(s.assoc, s.release, now)
				case s.due:
					evs = a.Due(now)
				}
				all = append(all, evs...)
				if got := kinds(evs); len(got) != len(s.want) || len(got) > 0 && got[0] != s.want[0] {
					t.Fatalf("step %d: events %v, want %v", i, got, s.want)
				}
			}
			last := all[len(all)-1]
			if tc.name == "late instance re-opens and supersedes" {
				if last.Generation != 2 || last.Supersedes != 1 || len(last.Paths) != 4 {
					t.Errorf("re-release: %+v, want generation 2 superseding 1 with 4 instances", last)
				}
			}
		})
	}
}

func TestAssemblerRestore(t *testing.T) {
	insts := []Instance{inst("1.1", 1, 0), inst("1.1", 2, 0), inst("1.2", 1, 0)}
	done := map[string]processedState{
		"1.1": {SeriesUID: "1.1", Generation: 1, Digest: instanceDigest([]string{"1.1.1", "1.1.2"})},
		"1.2": {SeriesUID: "1.2", Generation: 1, Digest: instanceDigest([]string{"1.2.1", "1.2.9"})},
	}
	a := NewAssembler(10*time.Second, time.Second)
	a.Restore(insts, done, t0)
	if evs := a.Due(t0.Add(9 * time.Second)); len(evs) != 0 {
		t.Fatalf("before the quiet period: %v", kinds(evs))
	}
	evs := a.Due(t0.Add(10 * time.Second))
	if len(evs) != 1 || evs[0].SeriesUID != "1.2" || evs[0].Reason != ReadyRestart || evs[0].Generation != 2 || evs[0].Supersedes != 1 {
		t.Fatalf("after restart: %+v, want only 1.2 released again as generation 2", evs)
	}
}
