package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/internal/testenv"
)

// asCLI makes this test binary act as `midline` (TestMain), so that a test runs a command such
// as `midline ota serve` as its own process.
const asCLI = "MIDLINE_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// midlineProcess starts `midline args...` as a process and stops it (SIGTERM) at cleanup.
func midlineProcess(t *testing.T, listen string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCLI+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if exited, _ := sigterm(cmd.Process, done); !exited {
			t.Errorf("midline %s still running %s after SIGTERM", args[0], 2*peers.Patience)
		}
	})
	peers.WaitListening(t, listen)
}

// sigterm asks a midline process to stop and waits up to 2 x peers.Patience for its exit on
// done. One still running then gets SIGQUIT, so its goroutines are on its stderr, and a test
// fails readably instead of hanging its package; exited says which it was.
func sigterm(p *os.Process, done <-chan error) (exited bool, err error) {
	p.Signal(syscall.SIGTERM)
	select {
	case err = <-done:
		return true, err
	case <-time.After(2 * peers.Patience):
		p.Signal(syscall.SIGQUIT)
		return false, <-done
	}
}

// TestOTAEndToEnd is issue 8's end to end: IT makes a repository with `midline ota init` and
// `publish --group`, the site's physicist approves the target with `ota site-key` and `ota
// approve`, `midline ota serve` serves it, and `midline ota push --group` tells both daemons of
// the group (two device ids) through mosquitto. Both switch on trial, run a T2 study on it,
// commit, and report `committed` with the new version on their retained ota/state (seen by
// mosquitto_sub and by `midline ota status`); a series sent after the commit is contoured by
// the new model and its structure set reaches the planning system.
func TestOTAEndToEnd(t *testing.T) {
	broker := peers.Mosquitto(t)
	sub := peers.Subscribe(t, broker, "midline/#")
	scp := peers.StartStorescp(t, "PLANNING", 0)
	work := t.TempDir()
	repo, keys := filepath.Join(work, "repo"), filepath.Join(work, "site-keys")
	serveAddr := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	for _, args := range [][]string{
		{"ota", "init", "--repo", repo},
		{"ota", "publish", "--repo", repo, "--group", "ward-a", bundleV(t, "2.1.0")},
		{"ota", "site-key", "--out", keys},
		{"ota", "approve", "--repo", repo, "--key", filepath.Join(keys, "site.pem"), "--site", "e2e-site", "--target", "dmg-t2-2.1.0.tar"},
	} {
		if code, out, errs := runCLI(args...); code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, code, out, errs)
		}
	}
	midlineProcess(t, serveAddr, "ota", "serve", "--repo", repo, "--listen", serveAddr)

	boxes, https := map[string]string{}, map[string]string{} // device id -> DICOM, HTTP address
	for _, id := range []string{"box-1", "box-2"} {
		b := newOTABox(t, otaBoxSpec{id: id, site: "e2e-site", broker: broker, repoURL: "http://" + serveAddr,
			root: filepath.Join(repo, "repository", "1.root.json"), siteKey: filepath.Join(keys, "site.pub.pem"), planning: scp.Port})
		startDaemon(t, b.cfgPath)
		boxes[id], https[id] = b.dicom, b.http
	}
	stateOf := func(id, phase, version string) bool {
		for _, l := range sub.Lines() {
			if strings.HasPrefix(l, "midline/v1/e2e-site/"+id+"/ota/state ") && strings.Contains(l, `"phase":"`+phase+`"`) &&
				(version == "" || strings.Contains(l, `"version":"`+version+`"`)) {
				return true
			}
		}
		return false
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range sub.Lines() {
				if strings.Contains(l, "ota") || strings.Contains(l, "job_") {
					t.Log(l[:min(len(l), 600)])
				}
			}
		}
	})
	for id := range boxes { // connected and subscribed: the command is not retained
		waitUntil(t, id+" online", func() bool { return stateOf(id, "idle", "") && sub.Has("midline/v1/e2e-site/"+id+"/status online") })
	}
	if code, out, errs := runCLI("ota", "push", "--broker", broker.URL(), "--site", "e2e-site", "--group", "ward-a",
		"--target", "dmg-t2-2.1.0.tar", "--now"); code != 0 {
		t.Fatalf("push: exit %d: %s%s", code, out, errs)
	}
	for id, addr := range boxes {
		waitUntil(t, id+" on trial", func() bool {
			if stateOf(id, "rejected", "") || stateOf(id, "failed", "") {
				t.Fatalf("%s did not take the update", id)
			}
			return stateOf(id, "trial", "2.1.0")
		})
		if out, err := peers.Storescu(t, "MIDLINE", addr, filepath.Join(repoRoot(t), "testdata", "phantom", "seed4", "T2")); err != nil {
			t.Fatalf("storescu to %s: %v\n%s", id, err, out)
		}
	}
	for id := range boxes {
		waitUntil(t, id+" committed 2.1.0", func() bool { return stateOf(id, "committed", "2.1.0") })
	}
	code, out, errs := runCLI("ota", "status", "--broker", broker.URL(), "--site", "e2e-site", "--json", "--wait", "1s")
	if code != 0 {
		t.Fatalf("ota status: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[2] != "2 device(s)" {
		t.Fatalf("ota status:\n%s", out)
	}
	for _, line := range lines[:2] {
		var s daemon.OTAState
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("ota status line %q: %v", line, err)
		}
		if st := s.Slots["T2"]; st == nil || st.Committed.Version != "2.1.0" || st.Highest != "2.1.0" || st.Trial != nil {
			t.Fatalf("%s: %+v", s.DeviceID, s.Slots["T2"])
		}
	}

	// A series after the switch: contoured by the committed new model, delivered.
	// A new series for the scanner to send: the phantom's T2 with new series and instance UIDs.
	series, seriesUID, err := synthmr.RenewSeries(filepath.Join(repoRoot(t), "testdata", "phantom", "seed4"), "T2", t.TempDir(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := peers.Storescu(t, "MIDLINE", boxes["box-1"], series); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	var done map[string]any
	waitUntil(t, "the job after the switch", func() bool {
		for _, l := range sub.Lines() {
			if strings.HasPrefix(l, "midline/v1/e2e-site/box-1/events ") && strings.Contains(l, `"type":"job_done"`) &&
				strings.Contains(l, seriesUID) {
				json.Unmarshal([]byte(l[strings.Index(l, " ")+1:]), &done)
				return true
			}
		}
		return false
	})
	if job, _ := done["job"].(map[string]any); job == nil || job["model"] != "dmg-t2 2.1.0" {
		t.Fatalf("the job after the switch: %v", done)
	}
	// Its structure set reaches the planning system and names the new model.
	var job daemon.Job
	waitUntil(t, "the delivery", func() bool {
		code, out, _ := runCLI("jobs", "show", done["job_id"].(string), "--json", "--url", "http://"+https["box-1"])
		return code == 0 && json.Unmarshal([]byte(out), &job) == nil && len(job.Deliveries) == 1 && job.Deliveries[0].State == "done"
	})
	b, err := os.ReadFile(filepath.Join(scp.Dir, "RS."+job.Deliveries[0].SOPUID))
	if err != nil || !strings.Contains(string(b), "dmg-t2 2.1.0") {
		t.Fatalf("the structure set at the planning system: %v", err)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * peers.Patience)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited in vain for %s", what)
}

// otaBox is a box of the whole-process OTA tests: its state folder, configuration and addresses.
type otaBox struct {
	state, cfgPath, http string
	dicom                string
}

// otaBoxSpec says what differs between those boxes.
type otaBoxSpec struct {
	id, site      string
	broker        *peers.Broker
	repoURL, root string // the OTA repository and its trusted root
	siteKey       string // ota.site_key; empty: no site approval required
	planning      int    // the planning system's DICOM port; 0: no destination
}

// newOTABox writes the configuration of a box of group ward-a that seeds its slots with T2 and
// T1C (testenv.Models), commits an update after one trial job, and runs on the simulated board.
func newOTABox(t *testing.T, spec otaBoxSpec) otaBox {
	t.Helper()
	b := otaBox{state: t.TempDir(), cfgPath: filepath.Join(t.TempDir(), "midline.yaml"),
		dicom: fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t)), http: fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))}
	destinations, approval := "", "  require_site_approval: false\n"
	if spec.planning != 0 {
		destinations = fmt.Sprintf("destinations:\n  - {name: planning, ae_title: PLANNING, host: 127.0.0.1, port: %d}\n", spec.planning)
	}
	if spec.siteKey != "" {
		approval = fmt.Sprintf("  site_key: %s\n", spec.siteKey)
	}
	text := fmt.Sprintf(`device_id: %s
site: %s
group: ward-a
state_dir: %s
dicom:
  listen: %s
  series_timeout: 2s
  disk_low_watermark: 0
%sengine:
  threads: 1
models:
  dir: %s
  seed_dir: %s
mqtt:
  broker: %s
http:
  listen: %s
board:
  profile: sim
ota:
  repo_url: %s
  trusted_root: %s
%s  trial_jobs: 1
  trial_minutes: 0
`, spec.id, spec.site, b.state, b.dicom, destinations, filepath.Join(b.state, "models"),
		testenv.Models(t, testenv.TestModels...), spec.broker.URL(), b.http, spec.repoURL, spec.root, approval)
	if err := os.WriteFile(b.cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}
