package daemon

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/peers"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/netdicom"
)

// BenchmarkStudyLatency measures, per series, the time from its last acknowledged instance
// (the newest spool file's modification time: written before the acknowledgement) to its
// structure set delivered to the planning system's storescp and its contour message received by
// mosquitto_sub, whichever is later; and the daemon process's peak RSS (VmHWM) over the study.
// The daemon runs as its own process (CPU engine, 2 threads), the peers are dcmtk and mosquitto.
//
//	go test -run '^$' -bench StudyLatency -benchtime 1x ./firmware/daemon
//
// MIDLINE_BENCH_STUDIES adds studies (folders of series folders, e.g. a full-size phantom made
// by python -m midline_model.phantom), separated by ':'.
func BenchmarkStudyLatency(b *testing.B) {
	studies := []string{seed4()}
	if extra := os.Getenv("MIDLINE_BENCH_STUDIES"); extra != "" {
		studies = append(studies, strings.Split(extra, ":")...)
	}
	for _, study := range studies {
		b.Run(filepath.Base(study), func(b *testing.B) {
			for range b.N {
				benchStudy(b, study)
			}
		})
	}
}

// stampedSub is mosquitto_sub printing each message's arrival time (Unix, nanoseconds).
type stampedSub struct {
	mu   sync.Mutex
	seen map[string]time.Time // topic -> first arrival
}

func subscribeStamped(b *testing.B, br *peers.Broker) *stampedSub {
	s := &stampedSub{seen: map[string]time.Time{}}
	cmd := exec.Command(testenv.Require(b, "mosquitto_sub"), "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port), "-q", "1",
		"-t", "#", "-F", "%U %t")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			stamp, topic, _ := strings.Cut(sc.Text(), " ")
			f, err := strconv.ParseFloat(stamp, 64)
			if err != nil {
				continue
			}
			s.mu.Lock()
			if _, ok := s.seen[topic]; !ok {
				s.seen[topic] = time.Unix(0, int64(f*1e9))
			}
			s.mu.Unlock()
		}
	}()
	pub := testenv.Require(b, "mosquitto_pub")
	for i := 0; ; i++ {
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port), "-q", "1", "-t", "bench-probe/"+strconv.Itoa(i), "-m", "x").Run()
		time.Sleep(50 * time.Millisecond)
		if _, ok := s.at("bench-probe/" + strconv.Itoa(i)); ok {
			return s
		}
		if i > 200 {
			b.Fatal("mosquitto_sub never subscribed")
		}
	}
}

func (s *stampedSub) at(topic string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.seen[topic]
	return t, ok
}

func benchStudy(b *testing.B, study string) {
	broker := peers.Mosquitto(b)
	sub := subscribeStamped(b, broker)
	scp := peers.StartStorescp(b, "PLANNING", 0)
	cfg, cfgPath, logf := childSetup(b, "bench-box", "bench", broker, scp, 2)
	defer logf.Close()
	c := startChild(b, cfgPath, cfg, logf)
	if out, err := peers.Storescu(b, "MIDLINE", cfg.DICOM.Listen, study); err != nil {
		b.Fatalf("storescu: %v\n%s", err, out)
	}
	var jobs []Job
	deadline := time.Now().Add(20 * time.Minute)
	for time.Now().Before(deadline) {
		jobs = readJobs(cfg.StateDir)
		ended := 0
		for _, j := range jobs {
			switch {
			case j.State == JobSkipped || j.State == JobFailed:
				ended++
			case j.State == JobDone && len(j.Deliveries) > 0 && j.Deliveries[0].State == netdicom.JobDone:
				if _, ok := sub.at("midline/v1/bench/bench-box/contours/" + j.ID); ok || j.Empty {
					ended++
				}
			}
		}
		if len(jobs) > 0 && ended == len(jobs) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	peak := vmHWM(c.cmd.Process.Pid)
	if err := c.terminate(); err != nil {
		b.Errorf("daemon exit: %v", err)
	}
	b.StopTimer()
	var worst time.Duration
	for _, j := range jobs {
		if j.State != JobDone {
			b.Logf("%s %s %s: %s", filepath.Base(study), j.Sequence, j.State, j.Reason)
			continue
		}
		var lastAck time.Time
		for _, p := range j.Paths {
			if st, err := os.Stat(p); err == nil && st.ModTime().After(lastAck) {
				lastAck = st.ModTime()
			}
		}
		done := j.Deliveries[0].Finished
		if at, ok := sub.at("midline/v1/bench/bench-box/contours/" + j.ID); ok && at.After(done) {
			done = at
		}
		lat := done.Sub(lastAck)
		worst = max(worst, lat)
		b.Logf("%s %s: %d instances; last acknowledged -> delivered and published %.2f s (infer %.0f ms, tiles %d, %s)",
			filepath.Base(study), j.Sequence, len(j.Paths), lat.Seconds(), j.Timings["infer"], j.Tiles, summary(j))
	}
	b.ReportMetric(worst.Seconds(), "worst-latency-s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.Logf("%s: worst series latency %.2f s; daemon peak RSS %.0f MiB", filepath.Base(study), worst.Seconds(), float64(peak)/(1<<20))
}

// vmHWM is a process's peak resident set in bytes.
func vmHWM(pid int) uint64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return kib(v)
		}
	}
	return 0
}
