package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/ota"
)

// shippedT2 is the version of the shipped T2 bundle the slots are seeded from.
var shippedT2 = testenv.ShippedVersion("dmg-t2")

// newVersion copies the shipped T2 bundle with another version in model.json (same weights,
// so the self-test passes).
func newVersion(t *testing.T, version string) string {
	t.Helper()
	src := filepath.Join(testenv.Root(), "models", "dmg-t2")
	dst := filepath.Join(t.TempDir(), "dmg-t2")
	os.MkdirAll(dst, 0o755)
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(src, e.Name()))
		if e.Name() == "model.json" {
			var m map[string]any
			json.Unmarshal(b, &m)
			m["version"] = version
			m["runtime"] = map[string]any{"min_firmware": "0.0.0"} // the test daemon is 0.1.0-test
			b, _ = json.Marshal(m)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return dst
}

// TestOTAThroughMQTT: a box with seeded slots takes a group command from the broker, checks it
// against TUF metadata, and switches T2 to the new version on trial between jobs; a command for
// a target released to another group changes nothing.
func TestOTAThroughMQTT(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := ota.Init(repoDir, filepath.Join(repoDir, "offline"), ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good, err := repo.Publish(newVersion(t, "2.1.0"), []string{"ward-a"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := repo.Publish(newVersion(t, "2.2.0"), []string{"ward-b"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Served())))
	defer srv.Close()
	r := newRig(t, func(c *config.Config) {
		c.Models.Dir, c.Models.SeedDir = filepath.Join(c.StateDir, "models"), testenv.Models(t, testenv.TestModels...)
		c.Group = "ward-a"
		c.OTA.RepoURL, c.OTA.TrustedRoot = srv.URL, filepath.Join(repo.Served(), "1.root.json")
		c.OTA.RequireSiteApproval, c.OTA.TrialJobs = false, 1
	})
	if m := r.d.modelList(); len(m) != 2 || m[1].Sequence != "T2" || m[1].Slot != "a" || m[1].Version != shippedT2 {
		t.Fatalf("seeded models %+v", m)
	}
	publish := func(b []byte) {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(r.broker.URL()).SetClientID("it-push"))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		defer c.Disconnect(100)
		c.Publish("midline/v1/test-site/group/ward-a/ota/cmd", 1, false, b).WaitTimeout(10 * time.Second)
	}
	push := func(target string) {
		b, _ := json.Marshal(OTACommand{Schema: OTACommandSchema, Target: target, Now: true})
		publish(b)
	}
	// An action the box does not know is refused with its reason, not taken for an update.
	publish([]byte(`{"schema":"midline.ota-cmd/1","action":"rollback","target":"` + good + `","now":true}`))
	waitFor(t, "ota_command_refused", func() bool { return subHas(r, `action \"rollback\"`) })
	// So is one too large for the MQTT client to keep (64 KiB), with its size.
	huge := `{"schema":"midline.ota-cmd/1","target":"` + strings.Repeat("a", 70000) + `"}`
	publish([]byte(huge))
	waitFor(t, "ota_command_refused for the oversized command", func() bool {
		return subHas(r, fmt.Sprintf("%d bytes, more than %d", len(huge), MaxOTACommand))
	})
	push(other)
	waitFor(t, "ota_rejected", func() bool { return subHas(r, `"type":"ota_rejected"`) })
	push(good)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range r.sub.Lines() {
				if strings.Contains(l, "ota") {
					t.Log(l)
				}
			}
		}
	})
	waitFor(t, "T2 2.1.0 on trial", func() bool {
		m := r.d.modelList()
		return len(m) == 2 && m[1].Sequence == "T2" && m[1].Version == "2.1.0" && m[1].Slot == "b"
	})
	waitFor(t, "retained ota/state trial", func() bool {
		for _, l := range r.sub.Lines() {
			if strings.Contains(l, "ota/state") && strings.Contains(l, `"phase":"trial"`) {
				return true
			}
		}
		return false
	})
	if !subHas(r, `"message_id":"test-box:ota:dmg-t2:2.1.0:trial"`) {
		t.Fatalf("no ota_trial event with its message id: %v", r.sub.Lines())
	}
	if subHas(r, `:ota:dmg-t2:2.2.0:trial`) {
		t.Fatal("the other group's target was installed")
	}
}

// subHas reports whether any received line contains s.
func subHas(r *rig, s string) bool {
	for _, l := range r.sub.Lines() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestOTAPeriodicCheck: without any command, the periodic check installs the newest target
// released to the box's group (not another group's), only within ota.window, and only once
// the study being processed is done.
func TestOTAPeriodicCheck(t *testing.T) {
	repoDir := t.TempDir()
	repo, err := ota.Init(repoDir, filepath.Join(repoDir, "offline"), ota.RepoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for v, group := range map[string]string{"2.1.0": "ward-a", "2.0.5": "ward-a", "2.2.0": "ward-b"} {
		if _, err := repo.Publish(newVersion(t, v), []string{group}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo.Served())))
	defer srv.Close()
	// The box's clock stands before ota.window (02:00-03:00) until the test moves it in.
	var clock atomic.Pointer[time.Time]
	at := func(hour int) {
		c := time.Date(2026, 1, 1, hour, 30, 0, 0, time.Local)
		clock.Store(&c)
	}
	at(12)
	r := newRigWith(t, func(c *config.Config) {
		c.Models.Dir, c.Models.SeedDir = filepath.Join(c.StateDir, "models"), testenv.Models(t, testenv.TestModels...)
		c.Group = "ward-a"
		c.OTA.RepoURL, c.OTA.TrustedRoot = srv.URL, filepath.Join(repo.Served(), "1.root.json")
		c.OTA.RequireSiteApproval, c.OTA.TrialJobs, c.OTA.Window = false, 1, "02:00-03:00"
	}, Options{OTACheckInterval: 300 * time.Millisecond, Clock: func() time.Time { return *clock.Load() }}, false)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range r.sub.Lines() {
				if strings.Contains(l, "ota") || strings.Contains(l, "job_") {
					t.Log(l[:min(len(l), 400)])
				}
			}
		}
	})
	waitFor(t, "the check waiting for the window", func() bool { return subHas(r, "waiting for ota.window 02:00-03:00") })
	// A study arrives; the window opens while it is processed.
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	waitFor(t, "the job to run", func() bool {
		jobs := readJobs(r.cfg.StateDir)
		return len(jobs) == 1 && jobs[0].State == JobRunning
	})
	if subHas(r, `"type":"ota_downloading"`) {
		t.Fatal("downloaded outside ota.window")
	}
	at(2)
	waitFor(t, "T2 2.1.0 on trial", func() bool {
		m := r.d.modelList()
		return len(m) == 2 && m[1].Sequence == "T2" && m[1].Version == "2.1.0"
	})
	done, download := -1, -1
	for i, l := range r.sub.Lines() {
		if done < 0 && strings.Contains(l, `"type":"job_done"`) {
			done = i
		}
		if download < 0 && strings.Contains(l, `"type":"ota_downloading"`) {
			download = i
		}
	}
	if done < 0 || download < done {
		t.Fatalf("the download (line %d) did not wait for the study's end (line %d)", download, done)
	}
	if subHas(r, ":ota:dmg-t2:2.2.0:") || subHas(r, ":ota:dmg-t2:2.0.5:") {
		t.Fatal("installed another group's target or an older one")
	}
}

// TestCrashLoopRollbackReachesMQTT: a box that starts for the fourth time with T2 on trial
// rolls the trial back while it opens its slots, before anything listens; the ota_rolled_back
// event, naming the trial, still reaches the broker through the durable outbox.
func TestCrashLoopRollbackReachesMQTT(t *testing.T) {
	r := newRig(t, func(c *config.Config) {
		c.Models.Dir, c.Models.SeedDir = filepath.Join(c.StateDir, "models"), testenv.Models(t, testenv.TestModels...)
		s, err := ota.OpenSlots(c.Models.Dir, os.DirFS(c.Models.SeedDir))
		if err != nil {
			t.Fatal(err)
		}
		slot := s.Inactive("T2")
		src := newVersion(t, "2.1.0")
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(src, e.Name()))
			os.WriteFile(filepath.Join(s.SlotDir("T2", slot), e.Name()), b, 0o644)
		}
		if err := s.BeginTrial("T2", ota.Installed{Slot: slot, Name: "dmg-t2", Version: "2.1.0", Target: "dmg-t2-2.1.0.tar"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		for range 3 { // three starts on trial already, none of them committing
			if _, err := s.CountStart(1000); err != nil {
				t.Fatal(err)
			}
		}
	})
	if m := r.d.modelList(); len(m) != 2 || m[1].Sequence != "T2" || m[1].Version != shippedT2 {
		t.Fatalf("models after the crash loop %+v, want T2 back on %s", m, shippedT2)
	}
	waitFor(t, "ota_rolled_back on MQTT", func() bool {
		return subHas(r, `"type":"ota_rolled_back"`) && subHas(r, `"message_id":"test-box:ota:dmg-t2:2.1.0:rolled_back"`)
	})
}

// TestModelNeedingNewerFirmwareIsRefused: a bundle in models.dir whose runtime.min_firmware is
// above this firmware is not loaded, whatever brought it there (OTA checks the signed metadata;
// this is the bundle's own model.json); an alarm says why, and the other model runs.
func TestModelNeedingNewerFirmwareIsRefused(t *testing.T) {
	dir := testenv.Models(t, "dmg-t1c")
	src := newVersion(t, "2.1.0")
	if err := os.CopyFS(filepath.Join(dir, "dmg-t2"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "dmg-t2", "model.json")
	b, _ := os.ReadFile(meta)
	os.WriteFile(meta, []byte(strings.Replace(string(b), `"min_firmware":"0.0.0"`, `"min_firmware":"9.0.0"`, 1)), 0o644)
	r := newRig(t, func(c *config.Config) { c.Models.Dir = dir })
	if m := r.d.modelList(); len(m) != 1 || m[0].Sequence != "T1C" {
		t.Fatalf("models %+v, want T1C only", m)
	}
	if a := strings.Join(r.d.Alarms(), "\n"); !strings.Contains(a, "dmg-t2 2.1.0 needs firmware 9.0.0, this is 0.1.0-test") {
		t.Fatalf("alarms %q", a)
	}
}

// TestRerunWithAnotherModelSupersedes: a job rerun after its model changed (here swapped in
// place, as a committed OTA update does) gets new UIDs, a result_superseded event naming both
// models, and a contour message with a new message id, so that consumers keeping the first
// message of each id do not drop the new contours. A rerun with the same model repeats the id.
func TestRerunWithAnotherModelSupersedes(t *testing.T) {
	r := newRig(t, nil)
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	first := r.waitJobs(1)[0]
	contourIDs := func() map[string]bool {
		ids := map[string]bool{}
		for _, l := range r.sub.Lines() {
			topic, payload, _ := strings.Cut(l, " ")
			var m struct {
				MessageID string `json:"message_id"`
			}
			if strings.HasSuffix(topic, "/contours/"+first.ID) && json.Unmarshal([]byte(payload), &m) == nil {
				ids[m.MessageID] = true
			}
		}
		return ids
	}
	waitFor(t, "the first contour message", func() bool { return len(contourIDs()) == 1 })
	rerun := func(attempt int) Job {
		t.Helper()
		if _, err := r.d.Rerun(first.ID); err != nil {
			t.Fatal(err)
		}
		var j Job
		waitFor(t, "the rerun", func() bool {
			j, _ = r.d.jobs.get(first.ID)
			return j.Attempts == attempt && j.State == JobDone
		})
		return j
	}
	if j := rerun(2); j.Deliveries[0].SOPUID != first.Deliveries[0].SOPUID || len(contourIDs()) != 1 {
		t.Fatalf("a rerun with the same model: UID %s (was %s), contour ids %v", j.Deliveries[0].SOPUID, first.Deliveries[0].SOPUID, contourIDs())
	}
	m, err := pipeline.OpenModel(t.Context(), newVersion(t, "2.1.0"), r.d.engineOptions())
	if err != nil {
		t.Fatal(err)
	}
	r.d.modelsMu.Lock()
	old := r.d.models["T2"]
	r.d.models["T2"] = m
	r.d.modelsMu.Unlock()
	t.Cleanup(old.Close)
	j := rerun(3)
	if j.Deliveries[0].SOPUID == first.Deliveries[0].SOPUID {
		t.Fatalf("a rerun with another model kept the UID %s", j.Deliveries[0].SOPUID)
	}
	waitFor(t, "result_superseded and a second contour message id", func() bool {
		return subHas(r, `"type":"result_superseded"`) && subHas(r, "dmg-t2 2.1.0 replaces the result of dmg-t2 "+shippedT2) && len(contourIDs()) == 2
	})
}
