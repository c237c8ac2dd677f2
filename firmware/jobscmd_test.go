package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/firmware/daemon"
	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
)

func TestJobsRecorded(t *testing.T) {
	pinTimeZone(t)
	srv := recordedAPI(t, map[string]string{
		"GET /api/jobs":                                   "jobs.json",
		"GET /api/jobs/jfaf0a773b49f":                     "job-T2.json",
		"POST /api/jobs/j1fdbfc14dfd8/rerun":              "rerun.json",
		"POST /api/jobs/jfaf0a773b49f/resend?to=planning": "resend.json",
		"POST /api/jobs/jfaf0a773b49f/resend?to=nowhere":  `!409conflict: job jfaf0a773b49f has no structure set for "nowhere"`,
		"POST /api/jobs/jc2267d0c876c/rerun":              "!409conflict: job jc2267d0c876c is running",
	})
	api := []string{"--url", srv.URL, "--token", testToken}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		golden string // stdout's golden file
		stdout string // or a part of stdout
		stderr string // a part of stderr
	}{
		{name: "list", args: []string{"list"}, golden: "jobs-list.txt"},
		{name: "list limited", args: []string{"list", "--limit", "1"}, stdout: "jc2267d0c876c"},
		{name: "show", args: []string{"show", "jfaf0a773b49f"}, golden: "jobs-show.txt"},
		{name: "show json", args: []string{"show", "--json", "jfaf0a773b49f"}, stdout: `"id": "jfaf0a773b49f"`},
		{name: "show unknown", args: []string{"show", "jnope"}, code: 1, stderr: "404 Not Found"},
		{name: "rerun", args: []string{"rerun", "j1fdbfc14dfd8"}, stdout: "job j1fdbfc14dfd8 queued again (attempt 2)"},
		{name: "rerun running", args: []string{"rerun", "jc2267d0c876c"}, code: 1, stderr: "409 Conflict: conflict: job jc2267d0c876c is running"},
		{name: "resend, flag after id", args: []string{"resend", "jfaf0a773b49f", "--to", "planning"},
			stdout: "job jfaf0a773b49f: structure set queued for planning (outbox job 53e201777094d03b, 1 files, pending)"},
		{name: "resend, flag first", args: []string{"resend", "--to=planning", "jfaf0a773b49f"}, stdout: "outbox job 53e201777094d03b"},
		{name: "resend unknown destination", args: []string{"resend", "jfaf0a773b49f", "--to", "nowhere"}, code: 1,
			stderr: `no structure set for "nowhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(append(append([]string{"jobs"}, tc.args...), api...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errs)
			}
			if tc.golden != "" {
				golden(t, tc.golden, out)
			}
			if !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("stdout %q\nstderr %q\nwant %q and %q", out, errs, tc.stdout, tc.stderr)
			}
			if tc.name == "list limited" && strings.Count(out, "\n") != 2 {
				t.Fatalf("--limit 1 printed:\n%s", out)
			}
		})
	}
}

func TestJobsUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"show"}, {"show", "a", "b"}, {"resend", "jfaf0a773b49f"}, {"list", "--bogus"}} {
		code, _, errs := runCLI(append([]string{"jobs"}, args...)...)
		if code != 2 || !strings.Contains(errs, "usage:") {
			t.Errorf("jobs %q: exit %d, stderr %q; want 2 and the usage", args, code, errs)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fl := flag.NewFlagSet("x", flag.ContinueOnError)
	to := fl.String("to", "", "")
	pos, err := parseInterspersed(fl, []string{"a", "--to", "d", "b", "--", "--c"})
	if err != nil || *to != "d" || !reflect.DeepEqual(pos, []string{"a", "b", "--c"}) {
		t.Fatalf("pos %q to %q err %v", pos, *to, err)
	}
}

// TestCommandsAgainstDaemon runs `midline status` and `midline jobs` against a real daemon
// loaded from a configuration file (with its token), its real peers around it: mosquitto, a
// storescp as the planning system, the phantom study sent with storescu. The resend reaches
// storescp again and the rerun runs the job a second time. The daemon runs with a notify socket
// as under systemd: READY=1 after start, WATCHDOG=1 while serving, STOPPING=1 at shutdown.
func TestCommandsAgainstDaemon(t *testing.T) {
	pinTimeZone(t)
	t.Setenv("MIDLINE_TOKEN", "")
	broker := peers.Mosquitto(t)
	scp := peers.StartStorescp(t, "PLANNING", 0)
	dicomAddr := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", peers.FreePort(t))
	cfgPath := filepath.Join(t.TempDir(), "midline.yaml")
	text := fmt.Sprintf(`device_id: cli-box
site: cli-site
state_dir: %s
dicom:
  listen: %s
  series_timeout: 2s
  disk_low_watermark: 0
destinations:
  - name: planning
    ae_title: PLANNING
    host: 127.0.0.1
    port: %d
engine:
  threads: 1
models:
  dir: %s
mqtt:
  broker: %s
http:
  listen: %s
  token: %s
board:
  profile: sim
`, t.TempDir(), dicomAddr, scp.Port, testenv.Models(t, testenv.TestModels...), broker.URL(), httpAddr, testToken)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	// As under systemd: the daemon reports on a notify socket of the test's.
	notify := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", notify.path)
	t.Setenv("WATCHDOG_USEC", "2000000")
	stop := startDaemon(t, cfgPath)
	notify.wait(t, func(m string) bool { return strings.HasPrefix(m, "READY=1") })
	api := []string{"--config", cfgPath}

	if out, err := peers.Storescu(t, "MIDLINE", dicomAddr, filepath.Join(repoRoot(t), "testdata", "phantom", "seed4")); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	jobs := waitJobs(t, cfgPath, func(js []daemon.Job) bool { return countEnded(js) == 3 })
	bySeq := map[string]daemon.Job{}
	for _, j := range jobs {
		bySeq[j.Sequence] = j
	}
	t2 := bySeq["T2"]

	code, out, errs := runCLI(append([]string{"status"}, api...)...)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errs)
	}
	for _, want := range []string{"device    cli-box (site cli-site)", "T2    dmg-t2 ", "T1C   dmg-t1c ", "engine    cpu: ready",
		"jobs 2 done, 1 skipped", "mqtt      connected", "board     sim; soc ", "alarms    none"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := runCLI("status", "--url", "http://"+httpAddr); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("status without the token: exit %d, %s", code, errs)
	}

	code, out, errs = runCLI(append([]string{"jobs", "list"}, api...)...)
	if code != 0 || strings.Count(out, "\n") != 4 {
		t.Fatalf("jobs list: exit %d: %s\n%s", code, errs, out)
	}
	for _, j := range jobs {
		if !strings.Contains(out, j.ID) {
			t.Errorf("jobs list lacks %s:\n%s", j.ID, out)
		}
	}
	if !strings.Contains(out, "no model for FLAIR") || !strings.Contains(out, "GTV_T2_AI") {
		t.Errorf("jobs list:\n%s", out)
	}

	code, out, errs = runCLI(append([]string{"jobs", "show", t2.ID, "--json"}, api...)...)
	var shown daemon.Job
	if code != 0 || json.Unmarshal([]byte(out), &shown) != nil || shown.ID != t2.ID || shown.State != daemon.JobDone {
		t.Fatalf("jobs show --json: exit %d: %s\n%s", code, errs, out)
	}
	code, out, _ = runCLI(append([]string{"jobs", "show", t2.ID}, api...)...)
	if code != 0 || !strings.Contains(out, "destination planning  done, structure set "+t2.Deliveries[0].SOPUID) {
		t.Fatalf("jobs show: exit %d\n%s", code, out)
	}

	// Resend: a new outbox job for the same file; it reaches storescp (the same UID again).
	code, out, errs = runCLI(append([]string{"jobs", "resend", t2.ID, "--to", "planning"}, api...)...)
	if code != 0 || !strings.Contains(out, "structure set queued for planning") {
		t.Fatalf("jobs resend: exit %d: %s\n%s", code, errs, out)
	}
	first := t2.Deliveries[0].OutboxJob
	waitJobs(t, cfgPath, func(js []daemon.Job) bool {
		for _, j := range js {
			if j.ID == t2.ID && j.Deliveries[0].OutboxJob != first && j.Deliveries[0].State == "done" {
				return true
			}
		}
		return false
	})
	if code, _, errs := runCLI(append([]string{"jobs", "resend", t2.ID, "--to", "nowhere"}, api...)...); code != 1 || !strings.Contains(errs, "409") {
		t.Errorf("resend to an unknown destination: exit %d, %s", code, errs)
	}

	// Rerun: the job runs a second time and ends with the same structure set UID.
	code, out, errs = runCLI(append([]string{"jobs", "rerun", t2.ID}, api...)...)
	if code != 0 || !strings.Contains(out, "queued again (attempt 2)") {
		t.Fatalf("jobs rerun: exit %d: %s\n%s", code, errs, out)
	}
	waitJobs(t, cfgPath, func(js []daemon.Job) bool {
		for _, j := range js {
			if j.ID == t2.ID && j.Attempts == 2 && j.State == daemon.JobDone {
				if j.Deliveries[0].SOPUID != t2.Deliveries[0].SOPUID {
					t.Fatalf("rerun changed the structure set UID: %s, was %s", j.Deliveries[0].SOPUID, t2.Deliveries[0].SOPUID)
				}
				return true
			}
		}
		return false
	})

	notify.wait(t, func(m string) bool { return m == "WATCHDOG=1" })
	stop()
	notify.wait(t, func(m string) bool { return m == "STOPPING=1" })
	if code, _, errs := runCLI(append([]string{"status"}, api...)...); code != 1 || !strings.Contains(errs, "cannot reach the daemon") {
		t.Errorf("status of a stopped daemon: exit %d, %s", code, errs)
	}
}

// notifyRecorder is systemd's end of the notify socket.
type notifyRecorder struct {
	path string
	msgs chan string
}

func notifySocket(t *testing.T) *notifyRecorder {
	t.Helper()
	n := &notifyRecorder{path: filepath.Join(t.TempDir(), "notify"), msgs: make(chan string, 1024)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case n.msgs <- string(buf[:k]):
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

// wait reads notifications until one satisfies ok.
func (n *notifyRecorder) wait(t *testing.T, ok func(string) bool) {
	t.Helper()
	timeout := time.After(peers.Patience)
	for {
		select {
		case m := <-n.msgs:
			if ok(m) {
				return
			}
		case <-timeout:
			t.Fatal("the awaited systemd notification never came")
		}
	}
}

func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd) // tests run in firmware/
}

// startDaemon runs the daemon in this process as `midline serve --config` does; the returned
// function (also a cleanup) stops it and reports a failed shutdown.
func startDaemon(t *testing.T, cfgPath string) func() {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, daemon.Options{Version: "0.1.0-test", Commit: "test", Logger: log, ShutdownGrace: 2 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	}
	t.Cleanup(stop)
	peers.WaitListening(t, cfg.DICOM.Listen)
	peers.WaitListening(t, cfg.HTTP.Listen)
	return stop
}

// waitJobs polls the API, through the CLI's own client, until ok holds.
func waitJobs(t *testing.T, cfgPath string, ok func([]daemon.Job) bool) []daemon.Job {
	t.Helper()
	c, err := (&apiFlags{config: cfgPath, timeout: 10 * time.Second}).client()
	if err != nil {
		t.Fatal(err)
	}
	var jobs []daemon.Job
	deadline := time.Now().Add(3 * peers.Patience)
	for time.Now().Before(deadline) {
		jobs = nil
		if err := c.do(context.Background(), http.MethodGet, "/api/jobs", &jobs); err != nil {
			t.Fatal(err)
		}
		if ok(jobs) {
			return jobs
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waited in vain; jobs: %+v", jobs)
	return nil
}

func countEnded(js []daemon.Job) int {
	n := 0
	for _, j := range js {
		if j.State == daemon.JobDone || j.State == daemon.JobSkipped || j.State == daemon.JobFailed {
			n++
		}
	}
	return n
}
