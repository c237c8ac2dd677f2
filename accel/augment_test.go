package accel

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/midline-rt/midline/preproc"
)

// rampModel adds the column index within the tile to each pixel: not mirror-symmetric, so a
// flipped run differs from a plain one.
type rampModel struct{ pointModel }

func (m *rampModel) Run(ctx context.Context, in, out []int8) error {
	for i, q := range in {
		out[i] = int8(max(-128, min(127, int(q)+i%m.size-m.size/2)))
	}
	return nil
}

// mirrored runs a model on the mirrored tile and mirrors its output back.
type mirrored struct {
	TileModel
	size    int
	in, out []int8
}

func (m *mirrored) Run(ctx context.Context, in, out []int8) error {
	m.in, m.out = make([]int8, len(in)), make([]int8, len(out))
	mirror(m.in, in, m.size, 1)
	if err := m.TileModel.Run(ctx, m.in, m.out); err != nil {
		return err
	}
	mirror(out, m.out, m.size, 1)
	return nil
}

func segmentWith(t *testing.T, m TileModel, p Plan, s Slice) Image {
	t.Helper()
	r, err := NewRunner(m, p, sameGrid{})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := r.Segment(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestFlipTTAWithASymmetricModelChangesNothing(t *testing.T) {
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0.05}
	s := randomSlice(70, 90, 6)
	for name, f := range map[string]func(int8) int8{"constant": constant(-28), "pointwise": func(q int8) int8 { return q / 2 }} {
		plain := segmentWith(t, &pointModel{size: 32, f: f}, p, s)
		p.FlipTTA = true
		tta := segmentWith(t, &pointModel{size: 32, f: f}, p, s)
		p.FlipTTA = false
		for i := range plain.Pix {
			if plain.Pix[i] != tta.Pix[i] {
				t.Fatalf("%s model: pixel %d is %v with TTA, %v without", name, i, tta.Pix[i], plain.Pix[i])
			}
		}
	}
}

func TestFlipTTAIsTheMeanOfThePlainAndMirroredRuns(t *testing.T) {
	p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0}
	s := randomSlice(61, 95, 7)
	ramp := func() *rampModel { return &rampModel{pointModel{size: 32}} }
	plain := segmentWith(t, ramp(), p, s)
	flipped := segmentWith(t, &mirrored{TileModel: ramp(), size: 32}, p, s)
	p.FlipTTA = true
	tta := segmentWith(t, ramp(), p, s)
	differ := false
	for i := range tta.Pix {
		want := (plain.Pix[i] + flipped.Pix[i]) / 2
		if math.Abs(float64(tta.Pix[i]-want)) > 1e-6 {
			t.Fatalf("pixel %d: %v with TTA, want the mean of %v and %v", i, tta.Pix[i], plain.Pix[i], flipped.Pix[i])
		}
		differ = differ || plain.Pix[i] != flipped.Pix[i]
	}
	if !differ {
		t.Fatal("the test model is mirror-symmetric: the test proves nothing")
	}
}

// channelModel answers with one input channel of a 2.5D model, passed through unchanged.
type channelModel struct {
	pointModel
	channels, pick int
}

func (m *channelModel) Input() TensorInfo {
	t := m.pointModel.Input()
	t.Shape = []int{1, m.size, m.size, m.channels}
	return t
}

func (m *channelModel) Run(ctx context.Context, in, out []int8) error {
	for i := range out {
		out[i] = in[i*m.channels+m.pick]
	}
	return nil
}

// axialVolume is a random axial series of n slices, 1 mm voxels.
func axialVolume(rows, cols, n int, seed uint64) *preproc.Volume {
	rng := rand.New(rand.NewPCG(seed, 2))
	v := &preproc.Volume{Geometry: preproc.Geometry{Rows: rows, Cols: cols, RowCosine: preproc.Vec3{1, 0, 0},
		ColumnCosine: preproc.Vec3{0, 1, 0}, Normal: preproc.Vec3{0, 0, 1}, PixelSpacing: [2]float64{1, 1}, SliceSpacing: 1}}
	for k := range n {
		v.Positions = append(v.Positions, preproc.Vec3{0, 0, float64(k)})
	}
	v.Pixels = make([]float32, rows*cols*n)
	for i := range v.Pixels {
		v.Pixels[i] = float32(100 + 30*rng.NormFloat64())
	}
	return v
}

// With context slices, channel j of the model's input is slice k+(j-c)*step, mirrored at the
// ends, step being the slices nearest input.context_mm (1 mm slices here): a model that answers
// with channel j gives, on slice k, what a 1-channel pass-through model gives on that slice.
func TestContextSlicesReachTheModelInOrderClampedAtTheEnds(t *testing.T) {
	const c, n = 2, 9
	v := axialVolume(40, 50, n, 8)
	norm := Normalization{Method: "percentile-zscore", PLow: 0.5, PHigh: 99.5}
	base := Plan{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 0.5, RoiGate: 0}
	run := func(m TileModel, p Plan) *Probability {
		r, err := NewRunner(m, p, sameGrid{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := SegmentVolume(context.Background(), r, norm, v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The reference: each slice normalised and run by itself, outside SegmentVolume (the
	// volume is already canonical: rows posterior, columns left, slices upwards).
	nm, err := preproc.FitNormalization(v.Pixels, norm.PLow, norm.PHigh)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NewRunner(&pointModel{size: 32, f: func(q int8) int8 { return q }}, base, sameGrid{})
	if err != nil {
		t.Fatal(err)
	}
	pass := &Probability{Q: make([]uint8, len(v.Pixels))}
	for k := range n {
		z := make([]float32, v.Rows*v.Cols)
		nm.Apply(z, v.Slice(k))
		p, _, err := plain.Segment(context.Background(), Slice{Image: Image{Rows: v.Rows, Cols: v.Cols, Pix: z}, Spacing: v.PixelSpacing, Fill: nm.PadValue()})
		if err != nil {
			t.Fatal(err)
		}
		quantize(pass.Q[k*len(z):(k+1)*len(z)], p.Pix)
	}
	plane := v.Rows * v.Cols
	for _, tc := range []struct {
		mm   float64
		step int
	}{{0, 1}, {2.5, 2}, {3.4, 3}} {
		ctxPlan := base
		ctxPlan.Context, ctxPlan.ContextMM = c, tc.mm
		for j := range 2*c + 1 {
			got := run(&channelModel{pointModel: pointModel{size: 32}, channels: 2*c + 1, pick: j}, ctxPlan)
			for k := range n {
				src := ContextSlice(k+(j-c)*tc.step, n)
				for i := range plane {
					if got.Q[k*plane+i] != pass.Q[src*plane+i] {
						t.Fatalf("%v mm: channel %d of slice %d: voxel %d is %d, slice %d's is %d", tc.mm, j, k, i, got.Q[k*plane+i], src, pass.Q[src*plane+i])
					}
				}
			}
		}
	}
}

// The firmware and the toolchain (scripts/model/tests/test_context.py) mirror alike.
func TestContextSliceMirrorsAtTheEnds(t *testing.T) {
	for _, tc := range []struct{ j, n, want int }{
		{-1, 5, 1}, {0, 5, 0}, {4, 5, 4}, {5, 5, 3}, {-2, 9, 2}, {10, 9, 6}, {-3, 2, 0}, {3, 2, 0}, {-1, 1, 0}, {1, 1, 0}} {
		if got := ContextSlice(tc.j, tc.n); got != tc.want {
			t.Errorf("index %d of %d slices: slice %d, want %d", tc.j, tc.n, got, tc.want)
		}
	}
}

// The same cases as scripts/model/tests/test_context.py: the firmware and the toolchain pick
// the same neighbours.
func TestContextStepIsTheNearestWholeNumberOfSlices(t *testing.T) {
	for _, tc := range []struct {
		slice, mm float64
		want      int
	}{{5, 5, 1}, {4.999999, 5, 1}, {5.000002, 5, 1}, {3, 5, 2}, {4, 5, 1}, {6, 5, 1}, {1.5, 5, 3},
		{1, 5, 5}, {0.5, 5, 10}, {12, 5, 1}, {2, 5, 2}, {1.9999999, 5, 2}, {2.0000001, 5, 2}, {3, 0, 1}} {
		if got := (Plan{ContextMM: tc.mm}).ContextStep(tc.slice); got != tc.want {
			t.Errorf("%v mm apart at %v mm slices: step %d, want %d", tc.mm, tc.slice, got, tc.want)
		}
	}
}

// Walking a series upwards, twice as the runner does (one pass per scale), the pool makes
// each slice once per pass, and every call gets the slices it asked for, also when the pool
// is cut to the budget.
func TestContextStackMakesEachSliceOncePerPass(t *testing.T) {
	for _, tc := range []struct{ rows, context, step, n int }{
		{4, 1, 1, 7}, {4, 1, 5, 30}, {4, 2, 3, 5}, {2048, 1, 5, 30}} {
		made := 0
		st := newStack(tc.context, tc.step, tc.rows, tc.rows, tc.n, func(dst []float32, k int) {
			made++
			for i := range dst {
				dst[i] = float32(k)
			}
		})
		for range 2 {
			for k := range tc.n {
				s := st.at(k)
				for j, img := range s.Context {
					want := float32(ContextSlice(k+(j-tc.context)*tc.step, tc.n))
					if img.Pix[0] != want || img.Pix[len(img.Pix)-1] != want {
						t.Fatalf("%+v: channel %d of slice %d holds slice %v", tc, j, k, img.Pix[0])
					}
				}
			}
		}
		want := 2 * tc.n
		if len(st.bufs) == tc.n { // the pool holds the whole series
			want = tc.n
		}
		if pooled := len(st.bufs) >= min(tc.n, 2*tc.context*tc.step+1); pooled && made != want {
			t.Errorf("%+v: %d slices made in two passes of %d, want %d", tc, made, tc.n, want)
		}
		if size := len(st.bufs) * tc.rows * tc.rows * 4; size > stackBudget && len(st.bufs) > 2*tc.context+1 {
			t.Errorf("%+v: a pool of %d bytes", tc, size)
		}
	}
}

// countingGrid is sameGrid counting ToScale calls.
type countingGrid struct {
	sameGrid
	calls *int
}

func (g countingGrid) ToScale(src Image, spacing [2]float64, scale float64) Image {
	*g.calls++
	return g.sameGrid.ToScale(src, spacing, scale)
}

// A 2.5D model's slices are resampled about once per scale, not once per channel (3 or 5 times),
// and the result is the same as resampling each channel itself (Runner.Segment, no
// ContextIndex). Near the first slices the mirrored neighbours come back after their entry was
// reused, so a pass may resample up to context*step slices twice.
func TestContextSlicesAreResampledOncePerScale(t *testing.T) {
	const n = 12
	v := axialVolume(40, 50, n, 9)
	norm := Normalization{Method: "percentile-zscore", PLow: 0.5, PHigh: 99.5}
	for _, tc := range []struct {
		context int
		mm      float64
	}{{1, 0}, {1, 3}, {2, 2}} {
		p := Plan{Size: 32, ScalesMM: []float64{1, 2}, ScaleWeights: []float64{0.7, 0.3}, Overlap: 0.5, RoiGate: 0,
			Context: tc.context, ContextMM: tc.mm}
		m := &channelModel{pointModel: pointModel{size: 32}, channels: p.Channels(), pick: 0}
		calls := 0
		r, err := NewRunner(m, p, countingGrid{calls: &calls})
		if err != nil {
			t.Fatal(err)
		}
		got, err := SegmentVolume(context.Background(), r, norm, v)
		if err != nil {
			t.Fatal(err)
		}
		// Each slice at 2 scales; roi_gate 0 opens every tile, so no probability is resampled
		// for a gate.
		reach := tc.context * p.ContextStep(1)
		if calls < 2*n || calls > 2*n+2*reach {
			t.Errorf("%+v: %d resamplings for %d slices at 2 scales, want %d to %d", tc, calls, n, 2*n, 2*n+2*reach)
		}
		// Each slice on its own, its channels resampled one by one.
		nm, err := preproc.FitNormalization(v.Pixels, norm.PLow, norm.PHigh)
		if err != nil {
			t.Fatal(err)
		}
		one, err := NewRunner(m, p, sameGrid{})
		if err != nil {
			t.Fatal(err)
		}
		plane := v.Rows * v.Cols
		for k := range n {
			s := Slice{Spacing: v.PixelSpacing, Fill: nm.PadValue()}
			for j := -tc.context; j <= tc.context; j++ {
				z := make([]float32, plane)
				nm.Apply(z, v.Slice(ContextSlice(k+j*p.ContextStep(1), n)))
				s.Context = append(s.Context, Image{Rows: v.Rows, Cols: v.Cols, Pix: z})
			}
			s.Image = s.Context[tc.context]
			want, _, err := one.Segment(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			q := make([]uint8, plane)
			quantize(q, want.Pix)
			if !slices.Equal(q, got.Q[k*plane:(k+1)*plane]) {
				t.Fatalf("%+v: slice %d differs from its channels resampled one by one", tc, k)
			}
		}
	}
}

func TestContextModelsMustMatchThePlan(t *testing.T) {
	p := Plan{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Overlap: 0.5, Context: 1}
	if _, err := NewRunner(&channelModel{pointModel: pointModel{size: 32}, channels: 5}, p, sameGrid{}); err == nil {
		t.Error("a 5-channel model accepted for 1 context slice (3 channels)")
	}
	r, err := NewRunner(&channelModel{pointModel: pointModel{size: 32}, channels: 3}, p, sameGrid{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Segment(context.Background(), randomSlice(40, 40, 9)); err == nil {
		t.Error("a slice without its context slices was accepted")
	}
	if _, err := NewRunner(&pointModel{size: 32, f: constant(0)}, Plan{Size: 32, ScalesMM: []float64{1}, ScaleWeights: []float64{1}, Context: MaxContextSlices + 1}, sameGrid{}); err == nil {
		t.Error("too many context slices accepted")
	}
}
