package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/ota"
)

// killRounds is how many times TestOTAKillDaemon kills the daemon during an update: each round
// is a fresh box (two daemon starts, an update to trial), 2 to 3 s under -race on two cores.
const killRounds = 20

// serveProcess is one `midline serve` process.
type serveProcess struct {
	cmd  *exec.Cmd
	done chan error
}

func startServe(t *testing.T, cfgPath string, log *os.File) *serveProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath, "--log-level", "warn")
	cmd.Env = append(os.Environ(), asCLI+"=1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// killAfter kills the process with SIGKILL after d; false when it had exited by itself.
func (p *serveProcess) killAfter(d time.Duration) bool {
	select {
	case <-p.done:
		p.done <- nil
		return false
	case <-time.After(d):
	}
	p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
	ee, ok := err.(*exec.ExitError)
	return ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

// terminate stops the daemon with SIGTERM (sigterm: a daemon still running after the wait is a
// failure, with its goroutines in the log the failure prints).
func (p *serveProcess) terminate(t *testing.T) {
	t.Helper()
	exited, err := sigterm(p.cmd.Process, p.done)
	p.done <- err
	if !exited {
		t.Fatalf("SIGTERM: midline serve still running after %s (SIGQUIT: %v; its goroutines are in the log)", 2*peers.Patience, err)
	}
	if err != nil {
		t.Fatalf("SIGTERM: midline serve exited with %v", err)
	}
}

// killBox is one box of TestOTAKillDaemon.
type killBox = otaBox

func newKillBox(t *testing.T, broker *peers.Broker, repoURL, root string) killBox {
	return newOTABox(t, otaBoxSpec{id: "kill-box", site: "kill-site", broker: broker, repoURL: repoURL, root: root})
}

func (b killBox) slots() *ota.SeqState {
	raw, err := os.ReadFile(filepath.Join(b.state, "models", "slots.json"))
	if err != nil {
		return nil
	}
	var s ota.SlotsState
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return s.Sequences["T2"]
}

// onTrial: the update has switched T2 to 2.1.0 (on trial, or committed by a job).
func (b killBox) onTrial() bool {
	st := b.slots()
	return st != nil && (st.Trial != nil && st.Trial.Version == "2.1.0" || st.Committed.Version == "2.1.0")
}

// progress says how far the update had come, from what the state folder holds.
func (b killBox) progress() string {
	staged, _ := filepath.Glob(filepath.Join(b.state, "ota", "staging", "*"))
	unpacked, _ := os.ReadDir(filepath.Join(b.state, "models", "T2", "slot-b"))
	switch {
	case b.slots() == nil:
		return "starting"
	case b.onTrial():
		return "on trial"
	case len(unpacked) > 0:
		return "unpacking or self-testing"
	case len(staged) > 0:
		return "downloading"
	}
	return "before the download"
}

// afterKill checks the state folder a kill left, as the next start reads it: slots.json and
// the active link agree, and the active slot's bundle loads and passes its self-test. It says
// what the box holds.
func (b killBox) afterKill(t *testing.T, round int) string {
	t.Helper()
	st := b.slots()
	if st == nil {
		return "not seeded yet" // the next start seeds the slots
	}
	slot, what := st.Committed.Slot, "committed "+st.Committed.Version
	if st.Trial != nil {
		slot, what = st.Trial.Slot, "trial "+st.Trial.Version
	}
	link, _ := os.Readlink(filepath.Join(b.state, "models", "T2", "active"))
	if link != "slot-"+slot {
		// A kill between slots.json's write and the link's swap: the start reconciles the
		// link from slots.json, the truth; the model must still be whole.
		what += " (link reconciled at start)"
	}
	bundle, err := accel.LoadBundle(filepath.Join(b.state, "models", "T2", "slot-"+slot))
	if err != nil {
		t.Fatalf("round %d: %s: %v", round, what, err)
	}
	m, err := bundle.Open(accel.Options{Threads: 1})
	if err != nil {
		t.Fatalf("round %d: %s: %v", round, what, err)
	}
	defer m.Close()
	if err := bundle.SelfTest(context.Background(), m); err != nil {
		t.Fatalf("round %d: %s fails its self-test: %v", round, what, err)
	}
	return what
}

// running waits until the daemon serves T2 from the slot that slots.json names as active and
// the link points at (read before and after the request, unchanged: an update may be
// switching meanwhile), and says which.
func (b killBox) running(t *testing.T, round int) string {
	t.Helper()
	var got string
	waitUntil(t, fmt.Sprintf("round %d: the daemon serving T2 from its active slot", round), func() bool {
		before, _ := os.ReadFile(filepath.Join(b.state, "models", "slots.json"))
		var h daemon.Health
		resp, err := http.Get("http://" + b.http + "/api/health")
		if err != nil {
			return false
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		after, _ := os.ReadFile(filepath.Join(b.state, "models", "slots.json"))
		st := b.slots()
		if err != nil || st == nil || !bytes.Equal(before, after) {
			return false
		}
		link, _ := os.Readlink(filepath.Join(b.state, "models", "T2", "active"))
		for _, m := range h.Models {
			switch {
			case m.Sequence != "T2" || link != "slot-"+m.Slot:
			case st.Trial != nil && m.Version == st.Trial.Version && m.Slot == st.Trial.Slot:
				got = "trial " + m.Version
				return true
			case st.Trial == nil && m.Version == st.Committed.Version && m.Slot == st.Committed.Slot:
				got = "committed " + m.Version
				return true
			}
		}
		return false
	})
	return got
}

// TestOTAKillDaemon kills the whole daemon (`midline serve`, its own process) with SIGKILL at
// a random moment of an update: from its start (seeding the slots, loading the models) through
// the retained update command, the download from `midline ota serve`, the unpack, the self-test,
// the switch and the trial; the moments are uniform over a quarter more than the time an
// uninterrupted run takes to reach the trial (the seed is logged), and the last round's kill
// falls on the trial for sure. After every kill the daemon restarts on a committed or
// trial model whose slot slots.json and the active link name and whose bundle loads and passes
// its self-test; the restarted daemon serves it, and the update completes to its trial; in the
// last round a T2 study on the trial model commits it.
func TestOTAKillDaemon(t *testing.T) {
	broker := peers.Mosquitto(t)
	work := t.TempDir()
	repo, err := ota.Init(filepath.Join(work, "repo"), filepath.Join(work, "offline"), ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target, err := repo.Publish(bundleV(t, "2.1.0"), []string{"ward-a"})
	if err != nil {
		t.Fatal(err)
	}
	serveAddr := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	midlineProcess(t, serveAddr, "ota", "serve", "--repo", repo.Dir, "--listen", serveAddr)
	root := filepath.Join(repo.Served(), "1.root.json")
	// A retained command: every (re)started daemon of the group receives it when it connects,
	// as after a power cut, so the update resumes without IT pushing again.
	retainCommand(t, broker, "midline/v1/kill-site/group/ward-a/ota/cmd",
		daemon.OTACommand{Schema: daemon.OTACommandSchema, Action: "update", Target: target, Now: true})
	log, err := os.Create(filepath.Join(work, "daemons.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("daemons' log (tail):\n%s", b[max(0, len(b)-64000):])
		}
	})

	// How long an uninterrupted update takes to reach its trial here: the range the kills are
	// drawn from (not an assertion).
	box := newKillBox(t, broker, "http://"+serveAddr, root)
	t0 := time.Now()
	p := startServe(t, box.cfgPath, log)
	waitUntil(t, "an uninterrupted update's trial", box.onTrial)
	span := time.Since(t0)
	p.terminate(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d; an uninterrupted update reaches its trial %s after the daemon's start", seed, span)

	outcomes := map[string]int{}
	for round := range killRounds {
		box := newKillBox(t, broker, "http://"+serveAddr, root)
		p := startServe(t, box.cfgPath, log)
		wait := time.Duration(rng.Int64N(int64(span) * 5 / 4)) // a quarter past the switch: kills on trial too
		if round == killRounds-1 {
			waitUntil(t, "the last round's trial", box.onTrial) // one kill surely on trial
			wait = 0
		}
		if !p.killAfter(wait) {
			t.Fatalf("round %d: the daemon exited by itself", round)
		}
		outcomes["killed "+box.progress()+", left "+box.afterKill(t, round)]++
		p = startServe(t, box.cfgPath, log)
		waitUntil(t, fmt.Sprintf("round %d: the update's trial after the restart", round), box.onTrial)
		if got := box.running(t, round); got != "trial 2.1.0" {
			t.Fatalf("round %d: after the restarted update the daemon runs %s", round, got)
		}
		if round < killRounds-1 {
			p.terminate(t)
			continue
		}
		// The last box: a study on the trial model completes the update. The trial is on record
		// before the restarted daemon listens: wait for its receiver.
		peers.WaitListening(t, box.dicom)
		if out, err := peers.Storescu(t, "MIDLINE", box.dicom, filepath.Join(repoRoot(t), "testdata", "phantom", "seed4", "T2")); err != nil {
			t.Fatalf("storescu: %v\n%s", err, out)
		}
		waitUntil(t, "the commit", func() bool { st := box.slots(); return st.Trial == nil && st.Committed.Version == "2.1.0" })
		if st := box.slots(); st.Highest != "2.1.0" || box.running(t, round) != "committed 2.1.0" {
			t.Fatalf("after the commit: %+v", st)
		}
		p.terminate(t)
	}
	t.Logf("%d kills; where they fell and what the daemon restarted on: %v", killRounds, outcomes)
}

// retainCommand publishes cmd retained (QoS 1) on topic.
func retainCommand(t *testing.T, broker *peers.Broker, topic string, cmd daemon.OTACommand) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("it-retain"))
	if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	b, _ := json.Marshal(cmd)
	if tok := c.Publish(topic, 1, true, b); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}
