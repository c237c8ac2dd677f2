package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/board"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/pipeline"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/preproc"
)

func seed4() string { return filepath.Join(testenv.Root(), "testdata", "phantom", "seed4") }

// rig is a daemon under test with its real peers: mosquitto with a mosquitto_sub on every
// topic, a storescp as the planning system.
type rig struct {
	t       *testing.T
	cfg     config.Config
	opts    Options
	d       *Daemon
	broker  *peers.Broker
	sub     *peers.Subscriber
	scp     *peers.Storescp
	cancel  context.CancelFunc
	done    chan error
	dicom   string
	httpURL string
}

// newRig configures a daemon like the demo's, on free ports, with edit applied last.
func newRig(t *testing.T, edit func(*config.Config)) *rig {
	t.Helper()
	return newRigWith(t, edit, Options{}, false)
}

// newRigWith also sets the daemon's test seams, and may use a broker that keeps sessions
// across a restart (with a persistent subscriber).
func newRigWith(t *testing.T, edit func(*config.Config), o Options, persistentBroker bool) *rig {
	t.Helper()
	r := &rig{t: t, opts: o}
	if persistentBroker {
		r.broker = peers.PersistentMosquitto(t)
		r.sub = peers.SubscribePersistent(t, r.broker, "midline/#")
	} else {
		r.broker = peers.Mosquitto(t)
		r.sub = peers.Subscribe(t, r.broker, "midline/#")
	}
	r.scp = peers.StartStorescp(t, "PLANNING", 0)
	cfg := config.Default()
	cfg.DeviceID, cfg.Site = "test-box", "test-site"
	cfg.StateDir = t.TempDir()
	cfg.DICOM.Listen = fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	cfg.DICOM.SeriesTimeout = 2 * time.Second
	cfg.DICOM.DiskLowWatermark = 0
	cfg.Destinations = []config.Destination{{Name: "planning", AETitle: "PLANNING", Host: "127.0.0.1", Port: r.scp.Port,
		Profile: config.DefaultProfile()}}
	cfg.Engine.Threads = 1
	cfg.Models.Dir = testenv.Models(t, testenv.TestModels...)
	cfg.MQTT.Broker = r.broker.URL()
	cfg.MQTT.HealthInterval = time.Second
	cfg.HTTP.Listen = fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	cfg.Board.Profile = "sim"
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r.cfg, r.dicom, r.httpURL = cfg, cfg.DICOM.Listen, "http://"+cfg.HTTP.Listen
	r.startDaemon()
	return r
}

func (r *rig) startDaemon() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	o := r.opts
	o.Version, o.Commit, o.Logger, o.ShutdownGrace = "0.1.0-test", "test", log, 2*time.Second
	d, err := New(ctx, r.cfg, o)
	if err != nil {
		cancel()
		r.t.Fatal(err)
	}
	r.d, r.cancel, r.done = d, cancel, make(chan error, 1)
	go func() { r.done <- d.Run(ctx) }()
	r.t.Cleanup(r.stopDaemon)
	peers.WaitListening(r.t, r.dicom)
}

func (r *rig) stopDaemon() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		r.t.Errorf("daemon stopped with %v", err)
	}
	r.cancel = nil
}

// waitJobs waits until n jobs have ended.
func (r *rig) waitJobs(n int) []Job {
	r.t.Helper()
	deadline := time.Now().Add(3 * peers.Patience)
	for time.Now().Before(deadline) {
		var ended []Job
		for _, j := range r.d.jobs.list() {
			if j.State == JobDone || j.State == JobSkipped || j.State == JobFailed {
				ended = append(ended, j)
			}
		}
		if len(ended) >= n {
			return ended
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("jobs: %+v", r.d.jobs.list())
	return nil
}

// waitFor polls until ok, within the patience.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * peers.Patience)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited in vain for %s", what)
}

// TestStudyEndToEnd sends the committed phantom study (T2, FLAIR, T1C) with dcmtk's storescu:
// the T2 and T1C series become structure sets at the planning system's storescp and contour
// messages at mosquitto_sub; FLAIR has no shipped model and is skipped with its reason. No
// MQTT payload carries the patient's name, ID or birth date.
func TestStudyEndToEnd(t *testing.T) {
	r := newRig(t, nil)
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, seed4()); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	jobs := r.waitJobs(3)
	bySeq := map[string]Job{}
	for _, j := range jobs {
		bySeq[j.Sequence] = j
		t.Logf("job %s %s %s %q latency %.0f ms volumes %v", j.ID, j.Sequence, j.State, j.Reason, j.LatencyMS, j.VolumesCM3)
	}
	for _, seq := range []string{"T2", "T1C"} {
		j := bySeq[seq]
		if j.State != JobDone || j.Empty || len(j.Deliveries) != 1 {
			t.Fatalf("%s: %+v", seq, j)
		}
	}
	if f := bySeq["FLAIR"]; f.State != JobSkipped || !strings.Contains(f.Reason, "no model for FLAIR") {
		t.Fatalf("FLAIR: %+v", f)
	}
	waitFor(t, "two structure sets at storescp", func() bool { return len(r.scp.Received("RS.")) == 2 })
	for _, seq := range []string{"T2", "T1C"} {
		j := bySeq[seq]
		uid := j.Deliveries[0].SOPUID
		if _, err := os.Stat(filepath.Join(r.scp.Dir, "RS."+uid)); err != nil {
			t.Fatalf("%s: RTSTRUCT %s not received: %v", seq, uid, err)
		}
		topic := "midline/v1/test-site/test-box/contours/" + j.ID
		waitFor(t, "contours of "+seq, func() bool {
			for _, l := range r.sub.Lines() {
				if strings.HasPrefix(l, topic+" ") {
					return true
				}
			}
			return false
		})
	}
	waitFor(t, "the delivered events", func() bool {
		n := 0
		for _, l := range r.sub.Lines() {
			if strings.Contains(l, `"type":"delivered"`) {
				n++
			}
		}
		return n == 2
	})
	// The contour message: schema, job, model, volume, polygons with their image references.
	for _, l := range r.sub.Lines() {
		topic, payload, _ := strings.Cut(l, " ")
		if !strings.Contains(topic, "/contours/") {
			continue
		}
		var m contour.ContoursMessage
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			t.Fatalf("contour message: %v", err)
		}
		// It names the RT Structure Set the planning system received.
		if j := bySeq[jobSequence(jobs, m.JobID)]; m.RTStructSOPUID != j.Deliveries[0].SOPUID {
			t.Errorf("contour message of job %s names RTSTRUCT %s; storescp received %s", m.JobID, m.RTStructSOPUID, j.Deliveries[0].SOPUID)
		}
		if m.Schema != contour.ContoursSchema || m.MessageID == "" || m.Approval != "UNAPPROVED" || len(m.ROIs) == 0 ||
			m.ROIs[0].VolumeCM3 < 5 || len(m.ROIs[0].Slices) == 0 || m.ROIs[0].Slices[0].SOPInstanceUID == "" {
			t.Fatalf("contour message %+v", m)
		}
	}
	checkNoPatientData(t, r.sub.Lines())

	// A resend is a new send: its events carry their own message ids, since consumers keep only
	// the first message of each id.
	t2 := bySeq["T2"].ID
	if _, err := r.d.Resend(t2, "planning"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two delivered events of the T2 job with distinct message ids", func() bool {
		ids := map[string]bool{}
		for _, l := range r.sub.Lines() {
			_, payload, _ := strings.Cut(l, " ")
			var e Event
			if json.Unmarshal([]byte(payload), &e) == nil && e.Type == "delivered" && e.JobID == t2 {
				ids[e.MessageID] = true
			}
		}
		return len(ids) == 2
	})
	// The planning system marked clinical since (a reload): the phantom-trained model's result
	// is not resent to it.
	clinical := r.cfg
	clinical.Destinations = slices.Clone(r.cfg.Destinations)
	clinical.Destinations[0].Clinical = true
	if _, _, err := r.d.Reload(clinical); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Resend(t2, "planning"); !errors.Is(err, errConflict) || !errors.Is(err, pipeline.ErrNotClinical) {
		t.Fatalf("resend of a non-clinical model's result to a clinical destination: %v", err)
	}

	// A QA tool reports the T2 result's agreement with the phantom's ground truth; the status
	// page shows it. A malformed report is refused.
	post := func(body string) int {
		resp, err := http.Post(r.httpURL+"/api/jobs/"+bySeq["T2"].ID+"/agreement", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"reference":"phantom seed 4 GTV","dice":0.9488}`); code != 200 {
		t.Fatalf("agreement: HTTP %d", code)
	}
	if code := post(`{"reference":"x","dice":1.5}`); code != 400 {
		t.Fatalf("a Dice of 1.5 was taken: HTTP %d", code)
	}

	// The status page, health, metrics and the API answer.
	for _, path := range []string{"/", "/healthz", "/metrics", "/api/health", "/api/jobs", "/jobs/" + bySeq["T2"].ID + "/preview.png"} {
		resp, err := http.Get(r.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if path == "/" && (!strings.Contains(string(body), bySeq["T2"].ID) || !strings.Contains(string(body), "Dice 0.949 against phantom seed 4 GTV")) {
			t.Fatal("the status page does not list the T2 job with its agreement")
		}
	}
}

// jobSequence is the sequence of the job with id among jobs.
func jobSequence(jobs []Job, id string) string {
	for _, j := range jobs {
		if j.ID == id {
			return j.Sequence
		}
	}
	return ""
}

// checkNoPatientData: no MQTT payload may carry the source's PatientName, PatientID,
// PatientBirthDate or OtherPatientIDs, in any spelling the phantom uses.
func checkNoPatientData(t *testing.T, lines []string) {
	t.Helper()
	var study struct {
		Patient map[string]any `json:"patient"`
	}
	b, err := os.ReadFile(filepath.Join(seed4(), "study.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &study); err != nil {
		t.Fatal(err)
	}
	var needles []string
	for _, v := range study.Patient {
		if s, ok := v.(string); ok && len(s) >= 4 {
			needles = append(needles, s)
		}
	}
	needles = append(needles, "PHANTOM^DMG0004", "MIDLINE-PH-0004", "20110101")
	if len(lines) == 0 {
		t.Fatal("no MQTT message to check")
	}
	for _, l := range lines {
		for _, n := range needles {
			if strings.Contains(l, n) {
				t.Fatalf("an MQTT payload carries patient data %q: %.200s", n, l)
			}
		}
	}
	t.Logf("%d MQTT messages checked against %d patient attributes", len(lines), len(needles))
}

// TestFieldOfViewCutEvent: a T2 series whose field of view the head fills (testdata/phantom/fov96)
// ends with its job and job_done event flagged, and, as the model finds nothing on it, a
// summary that says a lesion may have been missed instead of a plain "no lesion found".
func TestFieldOfViewCutEvent(t *testing.T) {
	r := newRig(t, nil)
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(testenv.Root(), "testdata", "phantom", "fov96", "T2")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	j := r.waitJobs(1)[0]
	if j.State != JobDone || !preproc.HasFieldOfViewCut(j.Flags) {
		t.Fatalf("job %+v: want done with a field-of-view flag", j)
	}
	waitFor(t, "the flagged job_done event", func() bool {
		for _, l := range r.sub.Lines() {
			_, payload, _ := strings.Cut(l, " ")
			var e Event
			if json.Unmarshal([]byte(payload), &e) == nil && e.Type == "job_done" && e.JobID == j.ID && e.Job != nil && preproc.HasFieldOfViewCut(e.Job.Flags) {
				if j.Empty != strings.Contains(e.Detail, "may have missed") {
					t.Errorf("empty %v, detail %q", j.Empty, e.Detail)
				}
				t.Logf("job_done: %s; flags %q", e.Detail, e.Job.Flags)
				return true
			}
		}
		return false
	})
}

// TestReloadAppliesSelection: SIGHUP's Reload takes new selection rules at once (a study out of
// scope is recorded and skipped with its reason) and names what needs a restart.
func TestReloadAppliesSelection(t *testing.T) {
	r := newRig(t, nil)
	next := r.cfg
	next.Selection = []config.Selection{{StudyDescription: "^HEAD AND NECK$"}}
	next.DICOM.MaxAssociations = 2
	applied, restart, err := r.d.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(applied, ",") != "selection" || strings.Join(restart, ",") != "dicom" {
		t.Fatalf("applied %v, restart %v", applied, restart)
	}
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	j := r.waitJobs(1)[0]
	if j.State != JobSkipped || !strings.Contains(j.Reason, "out of scope: selection[0]: study description does not match") {
		t.Fatalf("job after reload: %+v", j)
	}
	bad := next
	bad.DeviceID = "no spaces allowed"
	if _, _, err := r.d.Reload(bad); err == nil {
		t.Fatal("an invalid configuration was applied")
	}
}

// TestPruneKeepsRecentJobs: finished jobs older than retention.results go with their results;
// recent and unfinished ones stay.
func TestPruneKeepsRecentJobs(t *testing.T) {
	dir := t.TempDir()
	s, err := openJobStore(filepath.Join(dir, "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: config.Config{StateDir: dir, Retention: config.Retention{Results: time.Hour}}, jobs: s, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	old, recent, queued := time.Now().Add(-2*time.Hour), time.Now().Add(-time.Minute), time.Now().Add(-3*time.Hour)
	for _, j := range []Job{{ID: "old", State: JobDone, Finished: old}, {ID: "recent", State: JobDone, Finished: recent}, {ID: "waiting", State: JobQueued, Received: queued}} {
		os.MkdirAll(filepath.Join(dir, "results", j.ID), 0o750)
		if err := s.put(&j); err != nil {
			t.Fatal(err)
		}
	}
	d.prune()
	for id, want := range map[string]bool{"old": false, "recent": true, "waiting": true} {
		_, inStore := s.get(id)
		_, err := os.Stat(filepath.Join(dir, "results", id))
		if inStore != want || (err == nil) != want {
			t.Fatalf("%s: kept %v (results folder error %v), want %v", id, inStore, err, want)
		}
	}
}

// TestThermalPauseHoldsJobs: with the simulated accelerator above the high mark, reception goes
// on and the job waits (engine state thermal-paused, an alarm, a thermal_paused event); once it
// cools below the low mark the job runs.
func TestThermalPauseHoldsJobs(t *testing.T) {
	sim := board.NewSim(board.SimStep{SoCC: 60, AccelC: 92})
	r := newRigWith(t, nil, Options{Board: board.Options{Sim: sim, SampleInterval: 20 * time.Millisecond}}, false)
	waitFor(t, "the thermal pause", func() bool { return !r.d.board.Thermal().MayRun() })
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("reception must go on during a thermal pause: %v\n%s", err, out)
	}
	waitFor(t, "the job queued", func() bool { return r.d.jobs.counts()[JobQueued] == 1 })
	time.Sleep(300 * time.Millisecond) // many board samples while hot; not a measurement
	h := r.d.health()
	if h.Queue.Queued != 1 || h.Engine.State != "thermal-paused" || len(h.Alarms) == 0 {
		t.Fatalf("while hot: queue %+v, engine %+v, alarms %v", h.Queue, h.Engine, h.Alarms)
	}
	sim.Script(board.SimStep{SoCC: 45, AccelC: 50})
	if j := r.waitJobs(1)[0]; j.State != JobDone {
		t.Fatalf("after cooling: %+v", j)
	}
	var order []string
	for _, e := range r.d.recentEvents() {
		if e.Type == "thermal_paused" || e.Type == "thermal_resumed" || e.Type == "job_started" {
			order = append([]string{e.Type}, order...) // recentEvents is newest first
		}
	}
	if strings.Join(order, ",") != "thermal_paused,thermal_resumed,job_started" {
		t.Fatalf("events in order %v", order)
	}
}
