package accel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/preproc"
)

// timedModel records the duration of every invocation.
type timedModel struct {
	TileModel
	took []time.Duration
}

func (m *timedModel) Run(ctx context.Context, in, out []int8) error {
	t := time.Now()
	err := m.TileModel.Run(ctx, in, out)
	m.took = append(m.took, time.Since(t))
	return err
}

// TestBenchSeries is `make bench`'s series benchmark (scripts/bench.sh), skipped otherwise: for
// each phantom study folder in MIDLINE_BENCH_SERIES (comma-separated; each with T2/ and
// T2.gtv.nii.gz), the shipped T2 model on the CPU engine with MIDLINE_BENCH_THREADS threads
// (default 2) runs the series with ROI gating and without. It prints per-invoke latency,
// tiles/s, series wall time, the pipeline overhead (series time minus the time inside
// invocations, over series time), tiles with and without gating, Dice against the GTV of the
// thresholded map with and without gating, and whether gating lost a component the ungated
// map has. It asserts nothing about time.
func TestBenchSeries(t *testing.T) {
	list := os.Getenv("MIDLINE_BENCH_SERIES")
	if list == "" {
		t.Skip("make bench sets MIDLINE_BENCH_SERIES")
	}
	threads := 2
	if s := os.Getenv("MIDLINE_BENCH_THREADS"); s != "" {
		fmt.Sscan(s, &threads)
	}
	b, err := LoadBundle(filepath.Join("..", "models", "dmg-t2"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Open(Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if s := os.Getenv("MIDLINE_BENCH_GATE"); s != "" { // try another roi_gate than the bundle's
		if _, err := fmt.Sscan(s, &b.Meta.RoiGate); err != nil {
			t.Fatalf("MIDLINE_BENCH_GATE=%q: %v", s, err)
		}
	}
	fmt.Printf("| subject | series | gating | tiles | invoke p50 ms | tiles/s | series s | load s | in invoke s | overhead | Dice | components kept |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, dir := range strings.Split(list, ",") {
		benchSubject(t, dir, b.Meta, m)
	}
}

func benchSubject(t *testing.T, dir string, meta BundleMeta, m *Model) {
	paths, _ := filepath.Glob(filepath.Join(dir, "T2", "*.dcm"))
	t0 := time.Now()
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	load := time.Since(t0)
	truth := readMask(t, filepath.Join(dir, "T2.gtv.nii.gz"), v)
	var masks [2][]bool
	for i, gated := range []bool{false, true} {
		tm := &timedModel{TileModel: m}
		r, err := NewRunner(tm, meta.Plan(), &preproc.Resamplers{})
		if err != nil {
			t.Fatal(err)
		}
		r.noGate = !gated
		t1 := time.Now()
		p, err := SegmentVolume(context.Background(), r, meta.Normalization, v)
		if err != nil {
			t.Fatal(err)
		}
		wall := time.Since(t1)
		var sum time.Duration
		for _, d := range tm.took {
			sum += d
		}
		sorted := slices.Sorted(slices.Values(tm.took))
		q := uint8(min(255, int(meta.Threshold*255+0.999999)))
		masks[i] = make([]bool, len(p.Q))
		for j, x := range p.Q {
			masks[i][j] = x >= q
		}
		kept := "-"
		if gated {
			kept = componentsKept(masks[0], masks[1], nil, v.Rows, v.Cols, v.Slices()) + ", lesion " +
				componentsKept(masks[0], masks[1], truth.data, v.Rows, v.Cols, v.Slices())
		}
		fmt.Printf("| %s | %s | %v | %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.1f %% | %.4f | %s |\n",
			filepath.Base(dir), v.Geometry.String(), gated, len(tm.took), float64(sorted[len(sorted)/2])/1e6,
			float64(len(tm.took))/sum.Seconds(), wall.Seconds(), load.Seconds(), sum.Seconds(),
			100*(wall-sum).Seconds()/wall.Seconds(), dice(masks[i], truth.data), kept)
	}
}

func dice(pred []bool, truth []uint8) float64 {
	var inter, a, b int
	for i, p := range pred {
		t := truth[i] != 0
		if p {
			a++
		}
		if t {
			b++
		}
		if p && t {
			inter++
		}
	}
	if a+b == 0 {
		return 1
	}
	return 2 * float64(inter) / float64(a+b)
}

// componentsKept says how many of the ungated mask's 3D components (face connectivity) the
// gated mask overlaps: "k of n"; with a truth mask, only the components that touch the truth
// (the lesion, not false positives) count.
func componentsKept(full, gated []bool, truth []uint8, rows, cols, n int) string {
	seen := make([]bool, len(full))
	total, kept := 0, 0
	for start, on := range full {
		if !on || seen[start] {
			continue
		}
		hit, lesion := false, truth == nil
		stack := []int{start}
		seen[start] = true
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			hit = hit || gated[i]
			lesion = lesion || (truth != nil && truth[i] != 0)
			k, r, c := i/(rows*cols), i/cols%rows, i%cols
			for _, d := range [][3]int{{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}} {
				kk, rr, cc := k+d[0], r+d[1], c+d[2]
				if kk < 0 || kk >= n || rr < 0 || rr >= rows || cc < 0 || cc >= cols {
					continue
				}
				j := (kk*rows+rr)*cols + cc
				if full[j] && !seen[j] {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		if !lesion {
			continue
		}
		total++
		if hit {
			kept++
		}
	}
	return fmt.Sprintf("%d of %d", kept, total)
}

// BenchmarkInvoke times one model's invocation with random int8 input, for `make bench`'s int8
// peak (a large convolution stack) and the shipped model's tile latency; MIDLINE_PEAK_MODEL
// names the .tflite file, MIDLINE_BENCH_THREADS the threads (default 2).
func BenchmarkInvoke(b *testing.B) {
	path := os.Getenv("MIDLINE_PEAK_MODEL")
	if path == "" {
		b.Skip("make bench sets MIDLINE_PEAK_MODEL")
	}
	threads := 2
	if s := os.Getenv("MIDLINE_BENCH_THREADS"); s != "" {
		fmt.Sscan(s, &threads)
	}
	m, err := Open(path, Options{Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	in, out := make([]int8, m.Input().Elements()), make([]int8, m.Output().Elements())
	for i := range in {
		in[i] = int8(i*7919 + i/13)
	}
	b.ReportMetric(float64(threads), "threads")
	for b.Loop() {
		if err := m.Run(context.Background(), in, out); err != nil {
			b.Fatal(err)
		}
	}
}
