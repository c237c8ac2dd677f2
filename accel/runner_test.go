package accel

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// pointModel maps every input pixel through f, pixel by pixel: what it gives a pixel does not
// depend on the tile it sits in, so any seam or misplaced tile shows.
type pointModel struct {
	size  int
	f     func(q int8) int8
	calls int
	err   error
}

func (m *pointModel) tensor(name string) TensorInfo {
	return TensorInfo{Name: name, Type: Int8, Shape: []int{1, m.size, m.size, 1}, Bytes: m.size * m.size,
		Scale: 1.0 / 16, ZeroPoint: 0}
}
func (m *pointModel) Input() TensorInfo { return m.tensor("image") }
func (m *pointModel) Output() TensorInfo {
	t := m.tensor("probability")
	t.Scale, t.ZeroPoint = 1.0/256, -128
	return t
}
func (m *pointModel) Run(ctx context.Context, in, out []int8) error {
	m.calls++
	if m.err != nil {
		return m.err
	}
	for i, q := range in {
		out[i] = m.f(q)
	}
	return nil
}

// sameGrid is the resampler for a slice already at the model's scale (spacing == scale); other
// scales are integer box/nearest factors, enough to exercise the multi-scale paths.
type sameGrid struct{}

func (sameGrid) ToScale(src Image, spacing [2]float64, scale float64) Image {
	k := int(math.Round(scale / spacing[0]))
	if k <= 1 {
		return Image{Rows: src.Rows, Cols: src.Cols, Pix: append([]float32(nil), src.Pix...)}
	}
	out := newImage((src.Rows+k-1)/k, (src.Cols+k-1)/k)
	for y := range out.Rows {
		for x := range out.Cols {
			out.Pix[y*out.Cols+x] = src.Pix[min(y*k, src.Rows-1)*src.Cols+min(x*k, src.Cols-1)]
		}
	}
	return out
}

func (sameGrid) ToNative(src Image, rows, cols int) Image {
	out := newImage(rows, cols)
	for y := range rows {
		for x := range cols {
			out.Pix[y*cols+x] = src.Pix[min(y*src.Rows/rows, src.Rows-1)*src.Cols+min(x*src.Cols/cols, src.Cols-1)]
		}
	}
	return out
}

func constant(q int8) func(int8) int8 { return func(int8) int8 { return q } }

func randomSlice(rows, cols int, seed uint64) Slice {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := newImage(rows, cols)
	for i := range img.Pix {
		img.Pix[i] = float32(rng.NormFloat64())
	}
	return Slice{Image: img, Spacing: [2]float64{1, 1}, Fill: -2}
}

func plan1(size int) Plan {
	return Plan{Size: size, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 0.5, RoiGate: 0.05}
}

func TestTileOrigins(t *testing.T) {
	tests := []struct {
		n, size int
		want    []int
	}{
		{100, 128, []int{0}},
		{128, 128, []int{0}},
		{256, 128, []int{0, 64, 128}},
		{260, 128, []int{0, 64, 128, 132}},
		{129, 128, []int{0, 1}},
	}
	for _, tc := range tests {
		got := TileOrigins(tc.n, tc.size, 0.5)
		if len(got) != len(tc.want) {
			t.Errorf("TileOrigins(%d) = %v, want %v", tc.n, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("TileOrigins(%d) = %v, want %v", tc.n, got, tc.want)
			}
		}
	}
}

func TestConstantModelGivesItsConstantEverywhere(t *testing.T) {
	for _, shape := range [][2]int{{50, 70}, {100, 100}, {97, 161}, {16, 16}} {
		m := &pointModel{size: 32, f: constant(-28)} // (−28 + 128) / 256 = 0.390625
		p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0}
		r, err := NewRunner(m, p, sameGrid{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := r.Segment(context.Background(), randomSlice(shape[0], shape[1], 1))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got.Pix {
			if v != 0.390625 {
				t.Fatalf("%v: pixel %d = %v, want exactly 0.390625", shape, i, v)
			}
		}
	}
}

func TestShiftedInputGivesShiftedOutput(t *testing.T) {
	m := &pointModel{size: 32, f: func(q int8) int8 { return int8(max(-128, min(127, int(q)*3))) }}
	r, err := NewRunner(m, plan1(32), sameGrid{})
	if err != nil {
		t.Fatal(err)
	}
	base := randomSlice(90, 110, 2)
	const k = 7
	shifted := newImage(base.Image.Rows, base.Image.Cols)
	for y := range shifted.Rows {
		for x := k; x < shifted.Cols; x++ {
			shifted.Pix[y*shifted.Cols+x] = base.Image.Pix[y*shifted.Cols+x-k]
		}
	}
	a, _, err := r.Segment(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := r.Segment(context.Background(), Slice{Image: shifted, Spacing: base.Spacing, Fill: base.Fill})
	if err != nil {
		t.Fatal(err)
	}
	for y := range a.Rows {
		for x := k; x < a.Cols; x++ {
			if b.Pix[y*a.Cols+x] != a.Pix[y*a.Cols+x-k] {
				t.Fatalf("(%d,%d): shifted output %v, original %v", y, x, b.Pix[y*a.Cols+x], a.Pix[y*a.Cols+x-k])
			}
		}
	}
}

func TestGateZeroEqualsNoGating(t *testing.T) {
	f := func(q int8) int8 { return int8(max(-128, min(127, int(q)*8-100))) }
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0}
	s := randomSlice(120, 90, 3)
	gated, _ := NewRunner(&pointModel{size: 32, f: f}, p, sameGrid{})
	free, _ := NewRunner(&pointModel{size: 32, f: f}, p, sameGrid{})
	free.noGate = true
	a, sa, err := gated.Segment(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := free.Segment(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if sa.TilesSkipped != 0 {
		t.Errorf("roi_gate 0 skipped %d tiles", sa.TilesSkipped)
	}
	for i := range a.Pix {
		if a.Pix[i] != b.Pix[i] {
			t.Fatalf("pixel %d: %v with gate 0, %v without gating", i, a.Pix[i], b.Pix[i])
		}
	}
}

// squareSlice is a dark 256x256 slice (-1), with a bright 20x20 square (3) at rows and columns
// 40 to 59 when bright is set.
func squareSlice(bright bool) Image {
	img := newImage(256, 256)
	for i := range img.Pix {
		img.Pix[i] = -1
	}
	for y := 40; bright && y < 60; y++ {
		for x := 40; x < 60; x++ {
			img.Pix[y*256+x] = 3
		}
	}
	return img
}

func TestGateSkipsFarTilesAndKeepsTheLesion(t *testing.T) {
	// A bright square on a dark slice; the model says "lesion" where the input is bright.
	img := squareSlice(true)
	m := &pointModel{size: 32, f: func(q int8) int8 {
		if q > 0 {
			return 127
		}
		return -128
	}}
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0.05}
	r, _ := NewRunner(m, p, sameGrid{})
	got, st, err := r.Segment(context.Background(), Slice{Image: img, Spacing: [2]float64{1, 1}, Fill: -1})
	if err != nil {
		t.Fatal(err)
	}
	if st.TilesSkipped == 0 || st.TilesRun == 0 {
		t.Fatalf("stats %+v: want some tiles run and some skipped", st)
	}
	if v := got.Pix[50*256+50]; v < 0.9 {
		t.Errorf("lesion centre probability %v", v)
	}
	if v := got.Pix[200*256+200]; v != 0 {
		t.Errorf("far corner probability %v, want 0", v)
	}
}

func TestRunnerRefusesAModelThatDoesNotFitThePlan(t *testing.T) {
	m := &pointModel{size: 64, f: constant(0)}
	if _, err := NewRunner(m, plan1(128), sameGrid{}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("err = %v", err)
	}
	bad := []Plan{
		{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{1}, Overlap: 0.5},
		{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 1},
		{Size: 32, ScalesMM: []float64{0}, ScaleWeights: []float64{1}, Overlap: 0.5},
		{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{0}, Overlap: 0.5},
		{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 0.5, RoiGate: 2},
	}
	for _, p := range bad {
		if _, err := NewRunner(&pointModel{size: 32, f: constant(0)}, p, sameGrid{}); err == nil {
			t.Errorf("plan %+v accepted", p)
		}
	}
}

func TestRunnerReportsModelFailure(t *testing.T) {
	m := &pointModel{size: 32, f: constant(0), err: errors.New("delegate lost")}
	r, _ := NewRunner(m, plan1(32), sameGrid{})
	if _, _, err := r.Segment(context.Background(), randomSlice(40, 40, 4)); err == nil || !strings.Contains(err.Error(), "delegate lost") {
		t.Errorf("err = %v", err)
	}
	if _, _, err := r.Segment(context.Background(), Slice{Image: Image{Rows: 3, Cols: 3, Pix: make([]float32, 4)}}); err == nil {
		t.Error("a slice with the wrong number of values was accepted")
	}
}

func TestQuantizeRoundsHalfToEvenAndSaturates(t *testing.T) {
	q := quant{scale: 0.5, zero: -10}
	for _, tc := range []struct {
		v    float32
		want int8
	}{{0.25, -10}, {0.75, -8}, {1.25, -8}, {-0.25, -10}, {1000, 127}, {-1000, -128}} {
		if got := q.quantize(tc.v); got != tc.want {
			t.Errorf("quantize(%v) = %d, want %d", tc.v, got, tc.want)
		}
	}
	// The float32 rounding trick against math.RoundToEven: ties, near-ties, far beyond the
	// range, on a real input tensor's parameters.
	ref := func(q quant, v float32) int8 {
		return int8(min(127, max(-128, math.RoundToEven(float64(v/q.scale))+float64(q.zero))))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, q := range []quant{{0.5, -10}, {0.0263, -73}, {1.7, 0}, {1e-3, 127}} {
		for i := range 200000 {
			var v float32
			switch i % 4 {
			case 0:
				v = float32(rng.NormFloat64() * 4)
			case 1: // exact ties
				v = (float32(rng.IntN(600)-300) + 0.5) * q.scale
			case 2: // next to ties
				v = math.Nextafter32((float32(rng.IntN(600)-300)+0.5)*q.scale, float32(rng.NormFloat64()))
			default:
				v = float32(rng.NormFloat64() * 1e6)
			}
			if got, want := q.quantize(v), ref(q, v); got != want {
				t.Fatalf("%+v: quantize(%v) = %d, math.RoundToEven gives %d", q, v, got, want)
			}
		}
	}
}

func BenchmarkSegmentFixture(b *testing.B) {
	m, err := Open("testdata/fixture.tflite", Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	p := Plan{Size: 64, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 0.5, RoiGate: 0}
	r, err := NewRunner(m, p, sameGrid{})
	if err != nil {
		b.Fatal(err)
	}
	s := randomSlice(256, 256, 5)
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := r.Segment(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// The O(n) dilation equals the plain definition (the maximum over the clipped window) for
// every half-width, including windows wider than the image.
func TestDilateMaxEqualsTheDefinition(t *testing.T) {
	img := randomSlice(37, 23, 11).Image
	for _, k := range []int{0, 1, 2, 5, 11, 22, 40, 64} {
		got := dilateMax(img, k, func(n int) []float32 { return make([]float32, n) })
		for r := range img.Rows {
			for c := range img.Cols {
				want := float32(math.Inf(-1))
				for rr := max(0, r-k); rr <= min(img.Rows-1, r+k); rr++ {
					for cc := max(0, c-k); cc <= min(img.Cols-1, c+k); cc++ {
						want = max(want, img.Pix[rr*img.Cols+cc])
					}
				}
				if g := got.Pix[r*img.Cols+c]; g != want {
					t.Fatalf("k=%d (%d,%d): %v, want %v", k, r, c, g, want)
				}
			}
		}
	}
}

// TestGateReachesNeighbouringSlices: a lesion the coarse scale sees on one slice opens the fine
// tiles around it on every slice within GateSlabMM along the normal, and on no slice beyond.
// The model gives 0.031 (below roi_gate) on dark input, so a pixel's fused probability says
// whether its fine tile ran: 0.031 if it did, 0.3 x 0.031 if only the coarse scale ran there.
func TestGateReachesNeighbouringSlices(t *testing.T) {
	const n, lesion = 12, 2
	dark, bright := squareSlice(false), squareSlice(true)
	m := &pointModel{size: 32, f: func(q int8) int8 {
		if q > 0 {
			return 127
		}
		return -120 // 8/256
	}}
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0.05}
	for _, sliceMM := range []float64{5, 10, 3} {
		r, err := NewRunner(m, p, sameGrid{})
		if err != nil {
			t.Fatal(err)
		}
		reach := gateReach(sliceMM)
		var near, far []float32
		_, err = r.segmentSeries(context.Background(), n, sliceMM, func(k int) Slice {
			img := dark
			if k == lesion {
				img = bright
			}
			return Slice{Image: img, Spacing: [2]float64{1, 1}, Fill: -1}
		}, func(k int, got Image) {
			near = append(near, got.Pix[70*256+70]) // outside the lesion, inside the opened tiles
			far = append(far, got.Pix[200*256+200])
		})
		if err != nil {
			t.Fatal(err)
		}
		const ran, coarseOnly = float32(8.0 / 256), float32(0.3 * 8.0 / 256)
		for k := range n {
			want := coarseOnly
			if k != lesion && k >= lesion-reach && k <= lesion+reach {
				want = ran
			}
			if k != lesion && math.Abs(float64(near[k]-want)) > 1e-6 {
				t.Errorf("%v mm slices (reach %d): slice %d near the lesion: %v, want %v", sliceMM, reach, k, near[k], want)
			}
			if math.Abs(float64(far[k]-coarseOnly)) > 1e-6 {
				t.Errorf("%v mm slices: slice %d far from the lesion: %v, want %v (no fine tile)", sliceMM, k, far[k], coarseOnly)
			}
		}
	}
	// 5.0000022 and 4.999999995 mm: what the two readers measured on one 512x512 phantom.
	for mm, want := range map[float64]int{5: 4, 5.0000022: 4, 4.999999995: 4, 0: 0, 1: 20, 6: 3, 20.5: 0} {
		if got := gateReach(mm); got != want {
			t.Errorf("gateReach(%v) = %d, want %d", mm, got, want)
		}
	}
}
