package netdicom

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startOutboxChild(t *testing.T, dir, port string, enqueue []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), outboxChildEnv+"="+dir, "MIDLINE_OUTBOX_PORT="+port, "MIDLINE_OUTBOX_ENQUEUE="+strings.Join(enqueue, ","))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("outbox process: %q %v", line, err)
	}
	return cmd
}

func outboxJobs(t *testing.T, dir string) []Job {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var jobs []Job
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var j Job
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// TestOutboxSurvivesKill9 enqueues a job while the destination is down, kills the sending
// process with SIGKILL in the middle of its retries, then restarts it with storescp up: the job
// is delivered and marked done.
func TestOutboxSurvivesKill9(t *testing.T) {
	p := phantom{series: uidFor(t.Name()), n: 3, rows: 16, cols: 16}
	files := p.write(t, t.TempDir())
	for round := range 3 {
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close() // nothing listens: every attempt is refused
		child := startOutboxChild(t, dir, port, files)
		time.Sleep(time.Duration(50+round*70) * time.Millisecond)
		child.Process.Signal(os.Kill)
		child.Wait()
		jobs := outboxJobs(t, dir)
		if len(jobs) != 1 || jobs[0].State != JobPending || jobs[0].LastError == "" {
			t.Fatalf("round %d: after kill -9: %+v", round, jobs)
		}
		got := startStorescpOn(t, port)
		child = startOutboxChild(t, dir, port, nil)
		var j Job
		for range 200 {
			if jobs := outboxJobs(t, dir); len(jobs) == 1 && jobs[0].State != JobPending {
				j = jobs[0]
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		child.Process.Signal(os.Interrupt)
		child.Wait()
		if j.State != JobDone {
			t.Fatalf("round %d: job after restart: %+v", round, outboxJobs(t, dir))
		}
		for i := range files {
			if _, err := os.Stat(filepath.Join(got, "MR."+p.instanceUID(i))); err != nil {
				t.Errorf("round %d: instance %d not delivered: %v", round, i, err)
			}
		}
	}
}
