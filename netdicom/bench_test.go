package netdicom

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
)

// TestBenchReceivers is the netdicom part of `make bench` (MIDLINE_BENCH=1; skipped otherwise):
// storescu (TCP_NODELAY=1) sends 500 instances of 512x512 16-bit MR over one association and
// over four in parallel to (a) our SCP with durable acknowledgement, (b) our SCP with fsync off,
// (c) dcmtk storescp, (d) Orthanc when installed; then our SCU measures per-instance latency
// against each, and our receiver's peak RSS is read with 8 concurrent associations.
func TestBenchReceivers(t *testing.T) {
	if os.Getenv("MIDLINE_BENCH") != "1" {
		t.Skip("set MIDLINE_BENCH=1 (make bench)")
	}
	storescu := testenv.Require(t, "storescu")
	n, reps := envInt("MIDLINE_BENCH_N", 500), envInt("MIDLINE_BENCH_REPS", 3)
	root := t.TempDir()
	src := filepath.Join(root, "src")
	os.MkdirAll(src, 0o755)
	p := phantom{series: uidFor("bench"), n: n, rows: 512, cols: 512}
	files := p.write(t, src)
	var total int64
	for _, f := range files {
		st, _ := os.Stat(f)
		total += st.Size()
	}
	quarters := make([][]string, 4)
	for i, f := range files {
		quarters[i%4] = append(quarters[i%4], f)
	}
	targets := []benchTarget{
		{name: "(a) Midline, durable (fsync file + folder before Success)", start: func(t *testing.T, dir string) (string, func()) { return startBenchChild(t, dir, false) }},
		{name: "(b) Midline, fsync off", start: func(t *testing.T, dir string) (string, func()) { return startBenchChild(t, dir, true) }},
		{name: "(c) dcmtk storescp (no fsync)", start: startBenchStorescp},
	}
	if _, err := exec.LookPath("Orthanc"); err == nil {
		targets = append(targets, benchTarget{name: "(d) Orthanc (fsyncs before answering)", start: startBenchOrthanc})
	} else if _, err := os.Stat("/usr/sbin/Orthanc"); err == nil {
		targets = append(targets, benchTarget{name: "(d) Orthanc (fsyncs before answering)", start: startBenchOrthanc})
	}
	fmt.Printf("\n%d instances, %.1f MB in all, %d repetitions; storescu with TCP_NODELAY=1\n\n", n, float64(total)/1e6, reps)
	fmt.Println("| receiver | 1 association: instances/s | MB/s | 4 associations: instances/s | MB/s |")
	fmt.Println("|---|---|---|---|---|")
	// Repetitions alternate the receivers (a, b, c, d, a, b, ...) so that drift in the shared
	// machine's load spreads over all of them; each cell is the median of its repetitions.
	times := map[string][2][]float64{}
	for r := range reps {
		for ti, tg := range targets {
			for k, groups := range [][][]string{{files}, quarters} {
				dir := filepath.Join(root, fmt.Sprintf("run-%d-%d-%d", ti, r, k))
				addr, stop := tg.start(t, dir)
				start := time.Now()
				runStorescus(t, storescu, addr, groups)
				d := time.Since(start)
				stop()
				os.RemoveAll(dir)
				v := times[tg.name]
				v[k] = append(v[k], d.Seconds())
				times[tg.name] = v
			}
		}
	}
	var base [2]float64
	results := map[string][2]float64{}
	for _, tg := range targets {
		m1, m4 := median(times[tg.name][0]), median(times[tg.name][1])
		results[tg.name] = [2]float64{float64(n) / m1, float64(n) / m4}
		fmt.Printf("| %s | %.0f | %.0f | %.0f | %.0f |\n", tg.name, float64(n)/m1, float64(total)/1e6/m1, float64(n)/m4, float64(total)/1e6/m4)
		if strings.HasPrefix(tg.name, "(c)") {
			base = results[tg.name]
		}
	}
	fmt.Println("\nSeconds per repetition (1 association):")
	for _, tg := range targets {
		fmt.Printf("- %s: %.2f\n", tg.name, times[tg.name][0])
	}
	fmt.Println("\nRatios to storescp (instances/s, 1 association / 4 associations):")
	for _, tg := range targets {
		r := results[tg.name]
		fmt.Printf("- %s: %.2f / %.2f\n", tg.name, r[0]/base[0], r[1]/base[1])
	}
	fmt.Println("\nPer-instance latency, Midline's SCU sending the same instances over one association (C-STORE-RQ written to C-STORE-RSP read):")
	fmt.Println()
	fmt.Println("| receiver | p50 ms | p90 ms | p99 ms | max ms | histogram (ms: count) |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, tg := range targets {
		dir := filepath.Join(root, fmt.Sprintf("lat-%d", i))
		addr, stop := tg.start(t, dir)
		lat := scuLatencies(t, addr, files)
		stop()
		os.RemoveAll(dir)
		fmt.Printf("| %s | %.2f | %.2f | %.2f | %.2f | %s |\n", tg.name, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100), histogram(lat))
	}
	dir := filepath.Join(root, "rss")
	rss := rssWith8(t, storescu, dir, files)
	fmt.Printf("\nMidline receiver peak RSS (VmHWM) with 8 concurrent storescu associations, durable: %.1f MB\n", rss)
}

type benchTarget struct {
	name  string
	start func(t *testing.T, dir string) (addr string, stop func())
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i]
}

func histogram(v []float64) string {
	edges := []float64{0.5, 1, 2, 4, 8, 16, 32, 64}
	counts := make([]int, len(edges)+1)
	for _, x := range v {
		i, _ := slices.BinarySearch(edges, x)
		counts[i]++
	}
	var parts []string
	for i, c := range counts {
		if c == 0 {
			continue
		}
		label := fmt.Sprintf(">%g", edges[len(edges)-1])
		if i < len(edges) {
			label = fmt.Sprintf("≤%g", edges[i])
		}
		parts = append(parts, fmt.Sprintf("%s: %d", label, c))
	}
	return strings.Join(parts, ", ")
}

func runStorescus(t *testing.T, storescu, addr string, groups [][]string) {
	host, port, _ := net.SplitHostPort(addr)
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, storescu, append([]string{"-aec", "BENCH", host, port}, g...)...)
			cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("storescu to %s: %v\n%s", addr, err, out)
			}
		})
	}
	wg.Wait()
}

func scuLatencies(t *testing.T, addr string, files []string) []float64 {
	var pcs []PresentationContext
	pcs = append(pcs, PresentationContext{AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{ExplicitVRLittleEndian}})
	a, err := Dial(context.Background(), addr, ClientOptions{CalledAE: "BENCH"}, pcs)
	if err != nil {
		t.Fatal(err)
	}
	var lat []float64
	for _, f := range files {
		start := time.Now()
		if _, err := a.StoreFile(f); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	a.Release()
	return lat
}

func startBenchChild(t *testing.T, dir string, noFsync bool) (string, func()) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir, "MIDLINE_AET=BENCH")
	if noFsync {
		cmd.Env = append(cmd.Env, "MIDLINE_NO_FSYNC=1")
	}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line), func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func waitPort(t *testing.T, addr string) {
	for range 300 {
		if err := Echo(context.Background(), addr, ClientOptions{CalledAE: "BENCH", Timeout: time.Second}); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing answers C-ECHO on %s", addr)
}

func startBenchStorescp(t *testing.T, dir string) (string, func()) {
	os.MkdirAll(dir, 0o755)
	port := freePort(t)
	cmd := exec.Command(testenv.Require(t, "storescp"), "-aet", "BENCH", "-od", dir, port)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	waitPort(t, addr)
	return addr, func() { cmd.Process.Kill(); cmd.Wait() }
}

func startBenchOrthanc(t *testing.T, dir string) (string, func()) {
	os.MkdirAll(dir, 0o755)
	port, http := freePort(t), freePort(t)
	dport, _ := strconv.Atoi(port)
	hport, _ := strconv.Atoi(http)
	cfg := map[string]any{"Name": "bench", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"DicomAet": "BENCH", "DicomPort": dport, "HttpPort": hport, "HttpServerEnabled": true, "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "DicomCheckCalledAet": false, "Plugins": []string{}, "StorageCompression": false,
		"DicomServerEnabled": true, "DicomThreadsCount": 8, "DicomAlwaysAllowStore": true, "DicomAlwaysAllowEcho": true}
	b, _ := json.Marshal(cfg)
	conf := filepath.Join(dir, "orthanc.json")
	os.WriteFile(conf, b, 0o644)
	path, err := exec.LookPath("Orthanc")
	if err != nil {
		path = "/usr/sbin/Orthanc"
	}
	cmd := exec.Command(path, conf)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + port
	waitPort(t, addr)
	return addr, func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
}

// rssWith8 runs 8 storescu processes at once against a durable Midline receiver process and
// returns its peak resident set (VmHWM) in MB.
func rssWith8(t *testing.T, storescu, dir string, files []string) float64 {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir, "MIDLINE_AET=BENCH")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	groups := make([][]string, 8)
	for i, f := range files {
		groups[i%8] = append(groups[i%8], f)
	}
	runStorescus(t, storescu, strings.TrimSpace(line), groups)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// TestWriteBenchSeries writes the benchmark's phantom series into $MIDLINE_BENCH_WRITE, for
// profiling the receiver by hand; skipped otherwise.
func TestWriteBenchSeries(t *testing.T) {
	dir := os.Getenv("MIDLINE_BENCH_WRITE")
	if dir == "" {
		t.Skip("set MIDLINE_BENCH_WRITE to a folder")
	}
	phantom{series: uidFor("bench"), n: envInt("MIDLINE_BENCH_N", 500), rows: 512, cols: 512}.write(t, dir)
}
