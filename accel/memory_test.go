package accel

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/preproc"
)

// TestPeakRSS loads a series and segments it with a shipped model, then reports the process's
// peak resident set (VmHWM) after each phase. It measures, it asserts nothing about size: `make
// bench` (scripts/bench.sh) runs it as its own process, under a memory limit, on the worst case
// the issue names (a 1 mm sagittal 3D series of 512x512x176), with
// MIDLINE_RSS_SERIES=<folder of .dcm files> and MIDLINE_RSS_MODEL=<bundle folder>.
func TestPeakRSS(t *testing.T) {
	dir := os.Getenv("MIDLINE_RSS_SERIES")
	if dir == "" {
		t.Skip("set MIDLINE_RSS_SERIES (and MIDLINE_RSS_MODEL) to measure peak memory: make bench")
	}
	bundle := os.Getenv("MIDLINE_RSS_MODEL")
	if bundle == "" {
		bundle = filepath.Join("..", "models", "dmg-t2")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .dcm files in %s: %v", dir, err)
	}
	b, err := LoadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Open(Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("rss: model loaded: VmHWM %d MB", vmHWM(t)>>20)
	t0 := time.Now()
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rss: loaded %s in %v: VmHWM %d MB (pixels %d MB)", v.Geometry.String(), time.Since(t0).Round(time.Millisecond),
		vmHWM(t)>>20, 4*len(v.Pixels)>>20)
	r, err := NewRunner(m, b.Meta.Plan(), &preproc.Resamplers{})
	if err != nil {
		t.Fatal(err)
	}
	var before goruntime.MemStats
	goruntime.ReadMemStats(&before)
	t1 := time.Now()
	p, err := SegmentVolume(context.Background(), r, b.Meta.Normalization, v)
	if err != nil {
		t.Fatal(err)
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	t.Logf("rss: segmented in %v (%+v, %+v, reformatted %v): VmHWM %d MB; Go heap now %d MB, %d MB allocated while segmenting, %d GCs, GOMEMLIMIT %q",
		time.Since(t1).Round(time.Millisecond), p.Timings, p.Stats, p.Reformatted, vmHWM(t)>>20, ms.HeapAlloc>>20,
		(ms.TotalAlloc-before.TotalAlloc)>>20, ms.NumGC, os.Getenv("GOMEMLIMIT"))
	goruntime.KeepAlive(v)
}

// vmHWM is the process's peak resident set in bytes, from /proc/self/status.
func vmHWM(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			var kb int64
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")) {
				kb = kb*10 + int64(c-'0')
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// Each slice of a series costs the runner little more than the coarse probability it keeps for
// the gate and the fusion (a quarter of the pixels at 2 mm for 0.8 mm pixels here): it reuses its
// images, so a series makes almost no garbage and the collector's heap stays near the live data.
func TestSegmentReusesItsBuffers(t *testing.T) {
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0.05}
	r, err := NewRunner(&pointModel{size: 32, f: func(q int8) int8 { return q }}, p, &preproc.Resamplers{})
	if err != nil {
		t.Fatal(err)
	}
	s := randomSlice(90, 70, 12)
	s.Spacing = [2]float64{0.8, 0.8}
	series := func(n int) uint64 {
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		if _, err := r.segmentSeries(context.Background(), n, 5, func(int) Slice { return s }, func(int, Image) {}); err != nil {
			t.Fatal(err)
		}
		goruntime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	series(2) // the runner's own buffers
	short, long := series(10), series(20)
	perSlice := (long - short) / 10
	image := uint64(4 * s.Image.Rows * s.Image.Cols)
	t.Logf("%d bytes allocated per slice (one slice image: %d bytes)", perSlice, image)
	if perSlice > image/4 {
		t.Errorf("%d bytes allocated per slice, more than a quarter of one %d-byte slice image", perSlice, image)
	}
}
