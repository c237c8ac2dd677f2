package ota

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/midline-rt/midline/accel"

	"github.com/midline-rt/midline/internal/testenv"
)

// shippedT2 is the version of the shipped T2 bundle the slots are seeded from.
var shippedT2 = testenv.ShippedVersion("dmg-t2")

func TestUpdateCommitsAfterTrial(t *testing.T) {
	r := newRig(t)
	r.box()
	name := r.publish(bundle(t, "2.1.0", nil))
	if name != "dmg-t2-2.1.0.tar" {
		t.Fatalf("target %q", name)
	}
	if _, err := r.update(name); err != nil {
		t.Fatal(err)
	}
	if v := r.activeVersion(); v != "2.1.0" {
		t.Fatalf("active %s after the switch", v)
	}
	st := r.mgr.Snapshot().Sequences["T2"]
	if st.Trial == nil || st.Committed.Version != shippedT2 {
		t.Fatalf("want a trial over the shipped version: %+v", st)
	}
	r.mgr.JobResult("T2", true, time.Now())
	if r.mgr.Snapshot().Sequences["T2"].Trial == nil {
		t.Fatal("committed after one job; trial_jobs is 2")
	}
	ch := r.mgr.JobResult("T2", true, time.Now())
	if len(ch) != 1 || ch[0].Phase != PhaseCommitted {
		t.Fatalf("changes %+v", ch)
	}
	st = r.mgr.Snapshot().Sequences["T2"]
	if st.Committed.Version != "2.1.0" || st.Highest != "2.1.0" || st.Previous.Version != shippedT2 {
		t.Fatalf("after commit: %+v", st)
	}
	var phases []string
	for _, rp := range r.reports {
		phases = append(phases, string(rp.Phase))
	}
	if got := strings.Join(phases, " "); got != "downloading unpacking self_test ready trial committed" {
		t.Fatalf("phases %q", got)
	}
	// The committed state survives a restart, and the same version is now a downgrade.
	r.box()
	if v := r.activeVersion(); v != "2.1.0" {
		t.Fatalf("after restart: %s", v)
	}
	_, err := r.update(name)
	wantErr(t, err, ErrDowngrade)
}

func TestRejectedLeavesModelAlone(t *testing.T) {
	cases := []struct {
		name  string
		setup func(r *rig) string // returns the target to update to
		want  error
	}{
		{"tampered bundle", func(r *rig) string {
			n := r.publish(bundle(r.t, "2.1.0", nil))
			r.editTarget(func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
			return n
		}, ErrHashMismatch},
		{"hash ok but longer", func(r *rig) string {
			n := r.publish(bundle(r.t, "2.1.0", nil))
			r.editTarget(func(b []byte) []byte { return append(b, "extra"...) })
			return n
		}, ErrTooLong},
		{"wrong key", func(r *rig) string {
			other := newRig(r.t)
			r.trust = other.trust
			return r.publish(bundle(r.t, "2.1.0", nil))
		}, ErrMetadata},
		{"expired metadata", func(r *rig) string {
			r.repo.Opts.Now = func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }
			return r.publish(bundle(r.t, "2.1.0", nil))
		}, ErrMetadata},
		{"replayed metadata", func(r *rig) string {
			n := r.publish(bundle(r.t, "2.1.0", nil))
			old, _ := os.ReadFile(filepath.Join(r.repo.Served(), "timestamp.json"))
			if err := r.repo.RefreshTimestamp(); err != nil {
				r.t.Fatal(err)
			}
			if _, err := r.mgr.Check(); err != nil { // the box sees the newer timestamp
				r.t.Fatal(err)
			}
			os.WriteFile(filepath.Join(r.repo.Served(), "timestamp.json"), old, 0o644)
			return n
		}, ErrMetadata},
		{"downgrade", func(r *rig) string { return r.publish(bundle(r.t, "0.9.0", nil)) }, ErrDowngrade},
		{"same version", func(r *rig) string { return r.publish(bundle(r.t, shippedT2, nil)) }, ErrDowngrade},
		{"wrong sequence", func(r *rig) string { // the rig's box has T2 and T1C slots, none for FLAIR
			return r.publish(bundle(r.t, "2.1.0", func(m map[string]any) { m["sequence"] = "FLAIR" }))
		}, ErrSequence},
		{"engine not supported", func(r *rig) string {
			r.engine = accel.EdgeTPU
			return r.publish(bundle(r.t, "2.1.0", nil))
		}, ErrEngine},
		{"outside the group", func(r *rig) string { return r.publish(bundle(r.t, "2.1.0", nil), "ward-b") }, ErrNotReleased},
		{"unknown target", func(r *rig) string { return "dmg-t2-9.9.9.tar" }, ErrNotReleased},
		{"needs newer firmware", func(r *rig) string {
			return r.publish(bundle(r.t, "2.1.0", func(m map[string]any) { m["runtime"] = map[string]any{"min_firmware": "9.0.0"} }))
		}, ErrFirmware},
		{"failing self-test", func(r *rig) string {
			return r.publish(bundle(r.t, "2.1.0", func(m map[string]any) {
				m["targets"].(map[string]any)["cpu"].(map[string]any)["selftest"].(map[string]any)["output_sha256"] = strings.Repeat("0", 64)
			}))
		}, accel.ErrSelfTest},
		{"withdrawn", func(r *rig) string {
			n := r.publish(bundle(r.t, "2.1.0", nil))
			if err := r.repo.Recall(n); err != nil {
				r.t.Fatal(err)
			}
			return n
		}, ErrWithdrawn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.box()
			before, _ := os.ReadFile(filepath.Join(r.models, slotsFile))
			name := c.setup(r)
			r.box() // options a case changed (trust, engine)
			_, err := r.update(name)
			wantErr(t, err, c.want)
			if after, _ := os.ReadFile(filepath.Join(r.models, slotsFile)); !bytes.Equal(before, after) {
				t.Fatalf("slots.json changed:\n%s\n%s", before, after)
			}
			if v := r.activeVersion(); v != shippedT2 {
				t.Fatalf("running %s", v)
			}
			if c.want != ErrMetadata && r.lastPhase().Phase != PhaseRejected {
				t.Fatalf("last report %+v, want rejected", r.lastPhase())
			}
		})
	}
}

// editTarget rewrites the served bundle file, as a compromised mirror would.
func (r *rig) editTarget(f func([]byte) []byte) {
	r.t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.repo.Served(), "targets", "*.tar"))
	for _, p := range files {
		b, _ := os.ReadFile(p)
		os.WriteFile(p, f(b), 0o644)
	}
}

func TestTruncatedDownloadResumes(t *testing.T) {
	r := newRig(t)
	r.box()
	name := r.publish(bundle(t, "2.1.0", nil))
	files := r.handler
	var cut atomic.Bool
	var ranges []string
	r.handler = http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		if !strings.Contains(q.URL.Path, "/targets/") {
			files.ServeHTTP(w, q)
			return
		}
		ranges = append(ranges, q.Header.Get("Range"))
		if cut.CompareAndSwap(false, true) {
			// The server goes away after 100000 bytes.
			w.Header().Set("Content-Length", "400000")
			w.WriteHeader(http.StatusOK)
			b, _ := os.ReadFile(r.targetFile())
			w.Write(b[:100000])
			panic(http.ErrAbortHandler)
		}
		files.ServeHTTP(w, q)
	})
	_, err := r.update(name)
	wantErr(t, err, ErrTruncated)
	if r.lastPhase().Phase != PhaseFailed || r.activeVersion() != shippedT2 {
		t.Fatalf("after the cut: %+v", r.lastPhase())
	}
	if _, err := r.update(name); err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=100000-" {
		t.Fatalf("requests' Range headers %q", ranges)
	}
	if v := r.activeVersion(); v != "2.1.0" {
		t.Fatalf("active %s", v)
	}
}

func (r *rig) targetFile() string {
	files, _ := filepath.Glob(filepath.Join(r.repo.Served(), "targets", "*.tar"))
	if len(files) != 1 {
		r.t.Fatalf("target files %v", files)
	}
	return files[0]
}

func TestRollbacks(t *testing.T) {
	t.Run("failed job", func(t *testing.T) {
		r := newRig(t)
		r.box()
		if _, err := r.update(r.publish(bundle(t, "2.1.0", nil))); err != nil {
			t.Fatal(err)
		}
		ch := r.mgr.JobResult("T2", false, time.Now())
		if len(ch) != 1 || ch[0].Phase != PhaseRolledBack || r.activeVersion() != shippedT2 {
			t.Fatalf("changes %+v", ch)
		}
		if st := r.mgr.Snapshot().Sequences["T2"]; st.Highest != shippedT2 || st.Trial != nil {
			t.Fatalf("state %+v", st)
		}
	})
	t.Run("crash loop", func(t *testing.T) {
		r := newRig(t)
		r.box()
		if _, err := r.update(r.publish(bundle(t, "2.1.0", nil))); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ { // the manager's MaxStarts
			r.box()
			if v := r.activeVersion(); v != "2.1.0" {
				t.Fatalf("start %d: %s", i, v)
			}
		}
		r.box()
		if v, p := r.activeVersion(), r.lastPhase(); v != shippedT2 || p.Phase != PhaseRolledBack || p.Version != "2.1.0" || p.Target == "" {
			t.Fatalf("after a crash loop: %s, %+v (the report names the trial rolled back)", v, p)
		}
	})
	t.Run("recall", func(t *testing.T) {
		r := newRig(t)
		r.box()
		name := r.publish(bundle(t, "2.1.0", nil))
		if _, err := r.update(name); err != nil {
			t.Fatal(err)
		}
		r.mgr.Tick(time.Now())
		r.mgr.JobResult("T2", true, time.Now())
		r.mgr.JobResult("T2", true, time.Now())
		if err := r.repo.Recall(name); err != nil {
			t.Fatal(err)
		}
		targets, err := r.mgr.Check()
		if err != nil {
			t.Fatal(err)
		}
		ch := r.mgr.Recall(targets)
		if len(ch) != 1 || ch[0].Phase != PhaseReverted || r.activeVersion() != shippedT2 {
			t.Fatalf("changes %+v, phase %+v", ch, r.lastPhase())
		}
		// Anti-rollback still holds: 2.1.0 stays the highest committed.
		if st := r.mgr.Snapshot().Sequences["T2"]; st.Highest != "2.1.0" {
			t.Fatalf("highest %s", st.Highest)
		}
	})
}

func TestKeyRotationKeepsBoxesUpdating(t *testing.T) {
	r := newRig(t)
	r.box()
	if _, err := r.mgr.Check(); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"targets", "snapshot", "timestamp"} {
		if err := r.repo.RotateKey(r.rootKey, role); err != nil {
			t.Fatal(err)
		}
	}
	reopened, err := OpenRepo(r.repo.Dir, RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.repo = reopened
	if _, err := r.update(r.publish(bundle(t, "2.1.0", nil))); err != nil {
		t.Fatal(err)
	}
	if v := r.activeVersion(); v != "2.1.0" {
		t.Fatalf("active %s", v)
	}
}

func TestPublishTarRoundTrip(t *testing.T) {
	r := newRig(t)
	dir := bundle(t, "2.2.0", nil)
	tarPath := filepath.Join(t.TempDir(), "b.tar")
	f, _ := os.Create(tarPath)
	if err := PackBundle(dir, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	name := r.publish(tarPath)
	c := r.repo.Targets()[name]
	if c.Version != "2.2.0" || c.Sequence != "T2" || strings.Join(c.Engines, ",") != "cpu" || c.Groups[0] != "*" {
		t.Fatalf("custom %+v", c)
	}
	_ = context.Background
}
