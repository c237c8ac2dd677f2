package accel

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/midline-rt/midline/preproc"
)

func readF32(t *testing.T, path string, n int) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*n {
		t.Fatalf("%s: %d bytes, want %d", path, len(b), 4*n)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// TestRunnerMatchesThePythonReference runs models over phantom slices with the Go runner and
// preproc's resamplers, and compares with scripts/model's infer.run_series on the same slices
// (goldens from `python -m midline_model.runner_golden`: the fixture model single- and
// multi-scale, and the 2.5D fixture with channels three slices apart): same tiles, same gate, same
// blending, same quantisation, the same resampling both ways.
func TestRunnerMatchesThePythonReference(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "runner_golden", "*", "meta.json"))
	if err != nil || len(dirs) < 2 {
		t.Fatalf("runner goldens missing: %v %v", dirs, err)
	}
	for _, d := range dirs {
		dir := filepath.Dir(d)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkRunnerGolden(t, dir) })
	}
}

func checkRunnerGolden(t *testing.T, dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Model                    string // relative to the repository's root
		Slices, Rows, Cols, Size int
		Spacing                  [2]float64
		SliceMM                  float64 `json:"slice_mm"`
		TilesRun                 int     `json:"tiles_run"`
		Fill                     float32
		ScalesMM                 []float64 `json:"scales_mm"`
		ScaleWeights             []float64 `json:"scale_weights"`
		TileOverlap              float64   `json:"tile_overlap"`
		RoiGate                  float64   `json:"roi_gate"`
		Context                  int
		ContextMM                float64 `json:"context_mm"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	n := meta.Rows * meta.Cols
	z := readF32(t, filepath.Join(dir, "z.f32"), meta.Slices*n)
	want := readF32(t, filepath.Join(dir, "prob.f32"), meta.Slices*n)
	m, err := Open(filepath.Join("..", meta.Model), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	plan := Plan{Size: meta.Size, ScalesMM: meta.ScalesMM, ScaleWeights: meta.ScaleWeights,
		Overlap: meta.TileOverlap, RoiGate: meta.RoiGate, Context: meta.Context, ContextMM: meta.ContextMM}
	r, err := NewRunner(m, plan, &preproc.Resamplers{})
	if err != nil {
		t.Fatal(err)
	}
	// The slices come through SegmentVolume's pool, context slices included.
	stack := newStack(plan.Context, plan.ContextStep(meta.SliceMM), meta.Rows, meta.Cols, meta.Slices,
		func(dst []float32, k int) { copy(dst, z[k*n:(k+1)*n]) })
	worst := 0.0
	st, err := r.segmentSeries(context.Background(), meta.Slices, meta.SliceMM, func(k int) Slice {
		s := stack.at(k)
		s.Spacing, s.Fill = meta.Spacing, meta.Fill
		return s
	}, func(k int, got Image) {
		for i, v := range got.Pix {
			worst = max(worst, math.Abs(float64(v-want[k*n+i])))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if tiles := st.TilesRun; tiles != meta.TilesRun {
		t.Errorf("Go ran %d tiles, Python %d", tiles, meta.TilesRun)
	}
	// Float rounding differs (Python float32 arrays, Go float64 accumulators); what matters is
	// far below one output quantisation step (1/256 = 0.0039).
	if worst > 1e-4 {
		t.Errorf("largest difference from the Python reference: %g", worst)
	}
	t.Logf("largest difference from the Python reference: %g over %d tiles", worst, st.TilesRun)
}
