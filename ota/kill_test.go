package ota

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/internal/testenv"
)

// The kill test runs an update in a child process (this test binary, re-executed) that kills
// itself with SIGKILL at one failpoint, like a box losing power there.
const childEnv = "MIDLINE_OTA_CHILD"

type childSpec struct {
	RepoURL, Root, State, Target, KillAt string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	if spec := os.Getenv(fullEnv); spec != "" {
		os.Exit(runFullChild(spec))
	}
	os.Exit(m.Run())
}

func runChild(raw string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	root, _ := os.ReadFile(c.Root)
	s, err := OpenSlots(filepath.Join(c.State, "models"), os.DirFS(filepath.Join(testenv.Root(), "models")))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kill := func(name string) {
		if name == c.KillAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	m, _, err := NewManager(s, ManagerOptions{Trust: Trust{RepoURL: c.RepoURL, TrustedRoot: root, MetaDir: filepath.Join(c.State, "ota", "tuf")},
		StateDir: c.State, Group: "ward-a", Engine: accel.Options{Threads: 1}, TrialJobs: 1, Failpoint: kill})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	kill("started")
	targets, err := m.Check()
	if err == nil {
		var p *Prepared
		if p, err = m.Prepare(context.Background(), targets, c.Target); err == nil {
			if _, err = m.Activate(p, time.Now()); err == nil {
				m.JobResult(p.Sequence, true, time.Now())
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKillAtEveryPhase kills an update at each phase boundary; after every kill the box opens on
// a self-tested model that is committed or on trial, and running the update again completes it.
func TestKillAtEveryPhase(t *testing.T) {
	r := newRig(t)
	name := r.publish(bundle(t, "2.1.0", nil))
	rootPath := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(rootPath, r.trust, 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(r.repo.Served())))
	defer srv.Close()
	for _, at := range []string{"started", "checked", "downloaded", "unpacked", "self_tested", "switched", "committed"} {
		t.Run(at, func(t *testing.T) {
			state := t.TempDir()
			spec, _ := json.Marshal(childSpec{RepoURL: srv.URL, Root: rootPath, State: state, Target: name, KillAt: at})
			run := func(spec []byte) error {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
				out, err := cmd.CombinedOutput()
				if err != nil && len(out) > 0 {
					t.Logf("child: %s", out)
				}
				return err
			}
			err := run(spec)
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die at %s: %v", at, err)
			}
			r.state, r.models = state, filepath.Join(state, "models")
			r.box()
			v := r.activeVersion() // loads and self-tests the active slot
			st := r.mgr.Snapshot().Sequences["T2"]
			switch {
			case st.Trial != nil && st.Trial.Version == v:
			case st.Trial == nil && st.Committed.Version == v:
			default:
				t.Fatalf("running %s, slots %+v", v, st)
			}
			// The restarted update completes (or has nothing left to do).
			spec, _ = json.Marshal(childSpec{RepoURL: srv.URL, Root: rootPath, State: state, Target: name})
			err = run(spec)
			st = r.reopenAndFinishTrial()
			if st.Committed.Version != "2.1.0" || r.activeVersion() != "2.1.0" {
				t.Fatalf("after the restarted update (%v): %+v", err, st)
			}
		})
	}
}

// TestKillAtRandomPoints kills the update child with SIGKILL at random moments of its work
// (uniform over the time an uninterrupted run takes; the seed is logged), until there have been
// 43 kills: with TestKillAtEveryPhase's 7, 50 rounds. After every kill the box opens on a
// self-tested model that is committed or on trial, the slots agree with the active link, and
// the update run again completes (or, after a crash-looping trial, rolls back and completes on
// a new command).
func TestKillAtRandomPoints(t *testing.T) {
	r := newRig(t)
	name := r.publish(bundle(t, "2.1.0", nil))
	rootPath := filepath.Join(t.TempDir(), "root.json")
	os.WriteFile(rootPath, r.trust, 0o644)
	srv := httptest.NewServer(http.FileServer(http.Dir(r.repo.Served())))
	defer srv.Close()
	var out bytes.Buffer // the last child's output, for a failure's message
	start := func(state string) (*exec.Cmd, chan error) {
		spec, _ := json.Marshal(childSpec{RepoURL: srv.URL, Root: rootPath, State: state, Target: name})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		out.Reset()
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done
	}
	// How long an uninterrupted run takes to commit here: the range the kills are drawn from
	// (not an assertion). Measured to the commit, not to the process's exit, which can take
	// longer than the update itself under -race.
	t0 := time.Now()
	first := t.TempDir()
	_, done := start(first)
	var span time.Duration
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("an uninterrupted update failed:\n%s", out.String())
			}
			finished = true
		case <-time.After(2 * time.Millisecond):
		}
		if span == 0 && committedVersion(filepath.Join(first, "models")) == "2.1.0" {
			span = time.Since(t0)
		}
	}
	if span == 0 {
		t.Fatal("the uninterrupted update never committed 2.1.0")
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d, an uninterrupted run commits after %s", seed, span)
	kills, outcomes := 0, map[string]int{}
	for round := 0; kills < 43 && round < 120; round++ {
		state := t.TempDir()
		cmd, done := start(state)
		var err error
		select {
		case err = <-done: // finished before the kill: not a kill round
		case <-time.After(time.Duration(rng.Int64N(int64(span)))):
			cmd.Process.Kill()
			err = <-done
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			continue
		}
		kills++
		r.state, r.models = state, filepath.Join(state, "models")
		if _, err := os.Stat(filepath.Join(r.models, "slots.json")); err != nil {
			outcomes["before seeding"]++ // killed before the first slots.json: the box seeds at start
		}
		r.box()
		v := r.activeVersion() // loads and self-tests the active slot
		st := r.mgr.Snapshot().Sequences["T2"]
		link, _ := os.Readlink(filepath.Join(r.models, "T2", "active"))
		switch {
		case st.Trial != nil && st.Trial.Version == v && link == "slot-"+st.Trial.Slot:
			outcomes["trial "+v]++
		case st.Trial == nil && st.Committed.Version == v && link == "slot-"+st.Committed.Slot:
			outcomes["committed "+v]++
		default:
			t.Fatalf("round %d: running %s from %s, slots %+v", round, v, link, st)
		}
		if st.Trial == nil && st.Committed.Version == "2.1.0" {
			// The kill came after the update had committed (a slow child, -race): no work was
			// interrupted and nothing is left to do, so the round does not count.
			kills--
			continue
		}
		if _, done := start(state); <-done != nil && st.Trial == nil {
			t.Fatalf("round %d: the restarted update failed (slots before: %+v):\n%s", round, st, out.String())
		}
		st = r.reopenAndFinishTrial()
		if st.Committed.Version != "2.1.0" || r.activeVersion() != "2.1.0" {
			t.Fatalf("round %d: after the restarted update: %+v", round, st)
		}
	}
	t.Logf("%d kills; states found after them: %v", kills, outcomes)
	if kills < 43 {
		t.Fatalf("only %d runs were killed mid-work", kills)
	}
}

// committedVersion reads the T2 committed version from a slots.json being written by another
// process (written by rename, so never torn); empty when there is none yet.
func committedVersion(models string) string {
	b, err := os.ReadFile(filepath.Join(models, "slots.json"))
	if err != nil {
		return ""
	}
	var st struct {
		Sequences map[string]struct {
			Committed struct {
				Version string `json:"version"`
			} `json:"committed"`
		} `json:"sequences"`
	}
	if json.Unmarshal(b, &st) != nil {
		return ""
	}
	return st.Sequences["T2"].Committed.Version
}
