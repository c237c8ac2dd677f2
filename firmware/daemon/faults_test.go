package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/netdicom"
)

// The kill test runs the daemon in a child process (this test binary, re-executed) so that it
// can be killed with SIGKILL like a box losing power or the kernel's OOM killer.
const childEnv = "MIDLINE_DAEMON_CHILD_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(runChild(path))
	}
	os.Exit(m.Run())
}

func runChild(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var cfg config.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	d, err := New(ctx, cfg, Options{Version: "0.1.0-test", Commit: "child", ShutdownGrace: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a daemon process.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(t testing.TB, cfgPath string, cfg config.Config, log io.Writer) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	peers.WaitListening(t, cfg.DICOM.Listen)
	return c
}

// childSetup writes the configuration of a daemon child process (like the demo's, with its
// peers) and opens its log file.
func childSetup(t testing.TB, device, site string, broker *peers.Broker, scp *peers.Storescp, threads int) (config.Config, string, *os.File) {
	t.Helper()
	cfg := config.Default()
	cfg.DeviceID, cfg.Site, cfg.StateDir = device, site, t.TempDir()
	cfg.DICOM.Listen = fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	cfg.DICOM.SeriesTimeout, cfg.DICOM.DiskLowWatermark = 2*time.Second, 0
	cfg.Destinations = []config.Destination{{Name: "planning", AETitle: scp.AET, Host: "127.0.0.1", Port: scp.Port, Profile: config.DefaultProfile()}}
	cfg.Engine.Threads, cfg.Models.Dir = threads, testenv.Models(t, testenv.TestModels...)
	cfg.MQTT.Broker, cfg.HTTP.Listen, cfg.Board.Profile = broker.URL(), "", "sim"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path, logf
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

func (c *child) terminate() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	return <-c.done
}

// variant copies the committed phantom's T2 series with new Study, Series and SOP Instance
// UIDs, a new series for each round.
func variant(t *testing.T, dir string, round int) (string, string) {
	t.Helper()
	out, uid, err := synthmr.RenewSeries(seed4(), "T2", dir, round, true)
	if err != nil {
		t.Fatal(err)
	}
	return out, uid
}

// readJobs reads the job records from the state folder.
func readJobs(stateDir string) []Job {
	paths, _ := filepath.Glob(filepath.Join(stateDir, "jobs", "*.json"))
	var out []Job
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var j Job
		if json.Unmarshal(b, &j) == nil {
			out = append(out, j)
		}
	}
	return out
}

// TestKillNine kills the daemon with SIGKILL at least 20 times while it really works: during
// reception (counted when storescu saw the association drop) and during inference (counted when
// a job was running). After each kill it restarts and the round's series is sent again, as a
// scanner would. In the end every series has a finished job holding every instance, its
// structure set at the planning system's storescp (one UID per result; a re-send repeats it),
// and its contour message at mosquitto_sub.
func TestKillNine(t *testing.T) {
	testenv.Require(t, "storescu")
	broker := peers.Mosquitto(t)
	sub := peers.Subscribe(t, broker, "midline/#")
	scp := peers.StartStorescp(t, "PLANNING", 0)
	cfg, cfgPath, logf := childSetup(t, "kill-box", "test-site", broker, scp, 1)
	defer logf.Close()

	work := t.TempDir()
	c := startChild(t, cfgPath, cfg, logf)
	counted, reception, inference := 0, 0, 0
	var series []string
	for round := 0; counted < 20 && round < 60; round++ {
		dir, uid := variant(t, work, round)
		series = append(series, uid)
		send := exec.Command("storescu", "-aec", "MIDLINE", "+sd", "+sp", "*.dcm", "127.0.0.1", strings.Split(cfg.DICOM.Listen, ":")[1], dir)
		send.Env = append(os.Environ(), "TCP_NODELAY=1")
		sent := make(chan error, 1)
		if err := send.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { sent <- send.Wait() }()
		interrupted := false
		if round%2 == 0 {
			// During reception: once a few instances of this series are in the spool.
			spool := filepath.Join(cfg.StateDir, "spool", "series", uid)
			waitFor(t, "instances in the spool", func() bool {
				n, _ := filepath.Glob(filepath.Join(spool, "*.dcm"))
				return len(n) >= 3 || len(sent) > 0
			})
			c.kill()
			if err := <-sent; err != nil {
				interrupted = true
				reception++
			}
		} else {
			if err := <-sent; err != nil {
				t.Fatalf("round %d: storescu: %v", round, err)
			}
			// During inference: once this series' job is running.
			waitFor(t, "the job to run", func() bool {
				for _, j := range readJobs(cfg.StateDir) {
					if j.SeriesUID == uid && (j.State == JobRunning || j.State == JobDone || j.State == JobFailed) {
						return true
					}
				}
				return false
			})
			running := false
			for _, j := range readJobs(cfg.StateDir) {
				running = running || j.SeriesUID == uid && j.State == JobRunning
			}
			c.kill()
			if running {
				interrupted = true
				inference++
			}
		}
		if interrupted {
			counted++
		}
		c = startChild(t, cfgPath, cfg, logf)
		if out, err := peers.Storescu(t, "MIDLINE", cfg.DICOM.Listen, dir); err != nil {
			t.Fatalf("round %d: re-send: %v\n%s", round, err, out)
		}
	}
	t.Logf("%d rounds really interrupted work: %d during reception, %d during inference, of %d", counted, reception, inference, len(series))
	if counted < 20 {
		t.Fatalf("only %d of the rounds interrupted work", counted)
	}
	// Let the last daemon finish everything, then stop it cleanly.
	waitFor(t, "every series processed and delivered", func() bool {
		for _, uid := range series {
			ok := false
			for _, j := range readJobs(cfg.StateDir) {
				if j.SeriesUID == uid && j.State == JobDone && len(j.SOPInstanceUIDs) == 14 && len(j.Deliveries) == 1 &&
					j.Deliveries[0].State == netdicom.JobDone {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
		return true
	})
	waitFor(t, "the MQTT outbox to drain", func() bool {
		n, _ := filepath.Glob(filepath.Join(cfg.StateDir, "outbox", "mqtt", "*.msg"))
		return len(n) == 0
	})
	if err := c.terminate(); err != nil {
		t.Fatalf("SIGTERM: the daemon exited with %v", err)
	}
	jobs := readJobs(cfg.StateDir)
	known := map[string]bool{}
	for _, j := range jobs {
		for _, dv := range j.Deliveries {
			known[dv.SOPUID] = true
		}
	}
	received := scp.Received("RS.")
	for _, f := range received {
		if !known[strings.TrimPrefix(f, "RS.")] {
			t.Fatalf("storescp holds %s, which no job made", f)
		}
	}
	lines := sub.Lines()
	for _, uid := range series {
		for _, j := range jobs {
			if j.SeriesUID != uid || j.State != JobDone {
				continue
			}
			topic := "midline/v1/test-site/kill-box/contours/" + j.ID + " "
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(l, topic)
			}
			if !found {
				t.Fatalf("no contour message for job %s (series %s)", j.ID, uid)
			}
		}
	}
	t.Logf("%d jobs, %d structure sets at storescp for %d series, %d MQTT messages", len(jobs), len(received), len(series), len(lines))
}

// TestBrokerOutage stops mosquitto for 60 s while a study is processed: nothing is lost; every
// event and contour message reaches the (persistent) subscriber after the broker returns.
func TestBrokerOutage(t *testing.T) {
	r := newRigWith(t, nil, Options{MQTTMaxBackoff: 2 * time.Second}, true)
	r.broker.Terminate()
	stopped := time.Now()
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, seed4()); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	jobs := r.waitJobs(3)
	if wait := 60*time.Second - time.Since(stopped); wait > 0 {
		time.Sleep(wait) // the outage the issue asks for; not a measurement
	}
	depth := r.d.mq.Stats().OutboxDepth
	if depth == 0 {
		t.Fatal("nothing waited in the MQTT outbox during the outage")
	}
	r.broker.Start()
	want := map[string]bool{}
	for _, e := range r.d.recentEvents() {
		if e.JobID != "" {
			want[e.MessageID] = true
		}
	}
	for _, j := range jobs {
		if j.State == JobDone {
			want["contours/"+j.ID] = true
		}
	}
	waitFor(t, "every queued message at the subscriber", func() bool {
		got := strings.Join(r.sub.Lines(), "\n")
		for id := range want {
			if !strings.Contains(got, id) {
				return false
			}
		}
		return true
	})
	t.Logf("%d messages waited for the broker; all %d expected arrived after it returned", depth, len(want))
}

// TestDestinationDown: a destination down for the whole test gets its retries and then a
// dead-letter event; the other destination and the other jobs are not held up.
func TestDestinationDown(t *testing.T) {
	r := newRigWith(t, func(c *config.Config) {
		c.Destinations = append(c.Destinations, config.Destination{Name: "down", AETitle: "NOBODY", Host: "127.0.0.1",
			Port: peers.FreePort(t), Profile: config.DefaultProfile()})
	}, Options{SendAttempts: 3, SendDelay: 100 * time.Millisecond}, false)
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, seed4()); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	r.waitJobs(3)
	waitFor(t, "dead letters for both results and deliveries to planning", func() bool {
		dead, delivered := 0, 0
		for _, l := range r.sub.Lines() {
			if strings.Contains(l, `"type":"destination_dead_lettered"`) && strings.Contains(l, `"destination":"down"`) {
				dead++
			}
			if strings.Contains(l, `"type":"delivered"`) && strings.Contains(l, `"destination":"planning"`) {
				delivered++
			}
		}
		return dead == 2 && delivered == 2
	})
	if n := len(r.scp.Received("RS.")); n != 2 {
		t.Fatalf("planning received %d structure sets", n)
	}
}

// TestStateFolderFull: below the free-space watermark new instances are refused with 0xA700
// (Out of Resources) before anything is written, C-ECHO still answers and an alarm is raised;
// when space returns, the same study goes through.
func TestStateFolderFull(t *testing.T) {
	echoscu := testenv.Require(t, "echoscu")
	var free atomic.Uint64
	free.Store(1 << 20) // 1 MiB, below the 256 MiB watermark
	r := newRigWith(t, func(c *config.Config) { c.DICOM.DiskLowWatermark = 256 << 20 },
		Options{DiskFree: func(string) (uint64, error) { return free.Load(), nil }}, false)
	out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2"))
	if err == nil && !strings.Contains(strings.ToLower(out), "a700") && !strings.Contains(out, "Out of Resources") {
		t.Fatalf("storescu with a full state folder:\n%s", out)
	}
	host, port, _ := strings.Cut(r.dicom, ":")
	if msg, err := exec.Command(echoscu, "-aec", "MIDLINE", host, port).CombinedOutput(); err != nil {
		t.Fatalf("C-ECHO with a full state folder: %v\n%s", err, msg)
	}
	waitFor(t, "the disk alarm", func() bool { return strings.Contains(r.healthJSON(), "free-space watermark") })
	if n, _ := filepath.Glob(filepath.Join(r.cfg.StateDir, "spool", "series", "*", "*.dcm")); len(n) != 0 {
		t.Fatalf("%d instances stored while the folder was full", len(n))
	}
	free.Store(100 << 30)
	waitFor(t, "the alarm to clear", func() bool { return !strings.Contains(r.healthJSON(), "free-space watermark") })
	if out, err := peers.Storescu(t, "MIDLINE", r.dicom, filepath.Join(seed4(), "T2")); err != nil {
		t.Fatalf("storescu after space returned: %v\n%s", err, out)
	}
	if j := r.waitJobs(1); j[0].State != JobDone {
		t.Fatalf("job after space returned: %+v", j[0])
	}
}

func (r *rig) healthJSON() string {
	resp, err := http.Get(r.httpURL + "/api/health")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMQTTOutboxFullRaisesAlarm: with the broker away and the outbox full, a refused event
// raises the mqtt-outbox alarm (health carries it to facilities, who watch the health topic);
// once the broker is back and the outbox drains, the next message it takes clears the alarm.
func TestMQTTOutboxFullRaisesAlarm(t *testing.T) {
	r := newRigWith(t, func(c *config.Config) { c.MQTT.OutboxMaxMessages = 3 }, Options{MQTTMaxBackoff: time.Second}, true)
	r.broker.Terminate()
	alarmed := func() bool {
		return slices.ContainsFunc(r.d.Alarms(), func(a string) bool { return strings.Contains(a, "MQTT outbox refused an event") })
	}
	for i := 0; i < 10 && !alarmed(); i++ {
		r.d.event(Event{Type: "test_event", Detail: fmt.Sprint("while the broker is away ", i)})
	}
	if !alarmed() {
		t.Fatalf("the outbox took every event or raised no alarm: depth %d, alarms %q", r.d.mq.Stats().OutboxDepth, r.d.Alarms())
	}
	if ids := r.d.health().AlarmIDs; !slices.Equal(ids, []string{"mqtt-outbox"}) {
		t.Fatalf("health alarm_ids %q", ids)
	}
	r.broker.Start()
	waitFor(t, "the outbox drained", func() bool { return r.d.mq.Stats().OutboxDepth == 0 })
	r.d.event(Event{Type: "test_event", Detail: "after the broker returned"})
	if alarmed() {
		t.Fatalf("alarm still raised after the outbox took a message: %q", r.d.Alarms())
	}
	waitFor(t, "alarm_cleared on MQTT, naming the alarm", func() bool {
		return subHas(r, `"type":"alarm_cleared"`) && subHas(r, `"alarm":"mqtt-outbox"`)
	})
	if ids := r.d.health().AlarmIDs; len(ids) != 0 {
		t.Fatalf("health alarm_ids %q after the clearing", ids)
	}
}

// TestInterruptedJobsFailAfterThree: a job the daemon died with (state running in its file) is
// queued again when the jobs are read, and counted; at the third time it fails with a reason
// instead, so that a series that crashes or hangs the pipeline cannot loop the box. Each
// decision is written back at once: the next crash must not lose the count.
func TestInterruptedJobsFailAfterThree(t *testing.T) {
	dir := t.TempDir()
	write := func(j Job) {
		b, _ := json.Marshal(j)
		if err := os.WriteFile(filepath.Join(dir, j.ID+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(Job{ID: "jfirst", State: JobRunning, Attempts: 1})
	write(Job{ID: "jthird", State: JobRunning, Attempts: 3, Interruptions: 2})
	s, err := openJobStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := s.get("jfirst"); j.State != JobQueued || j.Interruptions != 1 {
		t.Errorf("first interruption: %+v", j)
	}
	if j, _ := s.get("jthird"); j.State != JobFailed || j.Interruptions != 3 || !strings.Contains(j.Reason, "stopped 3 times") {
		t.Errorf("third interruption: %+v", j)
	}
	again, err := openJobStore(dir) // what was decided is on disk
	if err != nil {
		t.Fatal(err)
	}
	if j, _ := again.get("jfirst"); j.State != JobQueued || j.Interruptions != 1 {
		t.Errorf("after reading again: %+v", j)
	}
}

// TestStuckWorkerStopsThePetting: the watchdog is petted only while no job has run longer than
// StuckAfter; a worker past it makes healthy() fail with the job's id, so the watchdog restarts
// the box.
func TestStuckWorkerStopsThePetting(t *testing.T) {
	r := newRigWith(t, nil, Options{StuckAfter: time.Minute}, false)
	if err := r.d.healthy(); err != nil {
		t.Fatalf("idle daemon unhealthy: %v", err)
	}
	r.d.mu.Lock()
	r.d.runningJob, r.d.runningFrom = "jstuck", time.Now().Add(-2*time.Minute)
	r.d.mu.Unlock()
	if err := r.d.healthy(); err == nil || !strings.Contains(err.Error(), "job jstuck has run for 2m0s") {
		t.Fatalf("stuck worker: %v", err)
	}
	r.d.mu.Lock()
	r.d.runningFrom = time.Now()
	r.d.mu.Unlock()
	if err := r.d.healthy(); err != nil {
		t.Fatalf("a job just started: %v", err)
	}
	r.d.mu.Lock()
	r.d.runningJob = ""
	r.d.mu.Unlock()
}
