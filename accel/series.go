package accel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/midline-rt/midline/preproc"
)

// Probability is a model's fused probability for a whole series, on the series' own grid,
// stored compactly (one byte a voxel: the series' pixels are the only other thing that grows with
// it): Q[(k*Rows+r)*Cols+c] = round(255 p) for pixel (r, c) of slice k of Geometry, the loaded
// volume's geometry (native slices, native pixel order). The int8 model's own output has 256
// levels, so a byte keeps what it says.
type Probability struct {
	Geometry preproc.Geometry
	Q        []uint8
	// Reformatted says the series was not near-axial and ran on an axial reformat whose
	// probabilities were interpolated back onto its slices.
	Reformatted bool
	// Normalization is the series' fitted percentile-zscore (its Otsu threshold separates the
	// head from the background for whoever needs that next).
	Normalization preproc.Normalization
	Stats         Stats
	Timings       Timings
}

// Timings are the phases of one series' inference.
type Timings struct {
	Normalize, Infer, Reformat time.Duration
}

// SegmentVolume runs r over every slice of v and returns the probability on v's grid.
// Near-axial series are shown to the model through preproc.Orient (an exact permutation);
// others are reformatted to axial, run, and interpolated back (docs/contracts.md,
// Orientation). The normalisation is fitted once on v's own voxels.
func SegmentVolume(ctx context.Context, r *Runner, norm Normalization, v *preproc.Volume) (*Probability, error) {
	if v == nil || v.Slices() == 0 || len(v.Pixels) != v.Rows*v.Cols*v.Slices() {
		return nil, fmt.Errorf("accel: empty or inconsistent volume")
	}
	t0 := time.Now()
	nm, err := preproc.FitNormalization(v.Pixels, norm.PLow, norm.PHigh)
	if err != nil {
		return nil, err
	}
	out := &Probability{Geometry: v.Geometry, Q: make([]uint8, len(v.Pixels)), Normalization: nm}
	out.Timings.Normalize = time.Since(t0)
	fill := nm.PadValue()
	if o, err := preproc.Orient(v.Geometry, preproc.DefaultMaxTiltDeg); err == nil {
		c := o.Canonical
		st := newStack(r.plan.Context, r.plan.ContextStep(c.SliceSpacing), c.Rows, c.Cols, c.Slices(), func(dst []float32, k int) {
			o.ToCanonical(dst, v.Slice(o.NativeSlice(k)))
			nm.Apply(dst, dst)
		})
		native := make([]float32, v.Rows*v.Cols)
		t1 := time.Now()
		stats, err := r.segmentSeries(ctx, c.Slices(), c.SliceSpacing, func(k int) Slice {
			s := st.at(k)
			s.Spacing, s.Fill = c.PixelSpacing, fill
			return s
		}, func(k int, p Image) {
			n := o.NativeSlice(k)
			o.FromCanonical(native, p.Pix)
			quantize(out.Q[n*v.Rows*v.Cols:(n+1)*v.Rows*v.Cols], native)
		})
		if err != nil {
			return nil, fmt.Errorf("accel: canonical %w", err)
		}
		out.Stats = stats
		out.Timings.Infer = time.Since(t1)
		return out, nil
	}
	return segmentReformatted(ctx, r, nm, v, out)
}

// segmentReformatted runs a sagittal or coronal series on an axial grid at the model's finest
// scale (finer would only be resampled away by the runner, and the grid's size is what bounds
// memory). Axial voxels beyond the native volume hold the clip floor, which normalises to the
// tile fill, like tiles beyond an image. The axial probabilities are kept as bytes, like the
// result, and mapped back one native slice at a time.
func segmentReformatted(ctx context.Context, r *Runner, nm preproc.Normalization, v *preproc.Volume, out *Probability) (*Probability, error) {
	t0 := time.Now()
	step := slices.Min(r.plan.ScalesMM)
	rf, err := preproc.NewReformat(v.Geometry, step, step, preproc.DefaultLimits())
	if err != nil {
		return nil, err
	}
	ax := rf.Axial
	plane := ax.Rows * ax.Cols
	prob := make([]uint8, plane*ax.Slices())
	stack := newStack(r.plan.Context, r.plan.ContextStep(ax.SliceSpacing), ax.Rows, ax.Cols, ax.Slices(), func(dst []float32, k int) {
		rf.ToAxialSlice(dst, v.Pixels, k, float32(nm.Low))
		nm.Apply(dst, dst)
	})
	fill := nm.PadValue()
	t1 := time.Now()
	stats, err := r.segmentSeries(ctx, ax.Slices(), ax.SliceSpacing, func(k int) Slice {
		s := stack.at(k)
		s.Spacing, s.Fill = ax.PixelSpacing, fill
		return s
	}, func(k int, p Image) {
		quantize(prob[k*plane:(k+1)*plane], p.Pix)
	})
	if err != nil {
		return nil, fmt.Errorf("accel: axial reformat %w", err)
	}
	infer := time.Since(t1)
	out.Stats = stats
	n := v.Rows * v.Cols
	for k := range v.Slices() {
		rf.ToNativeSlice(out.Q[k*n:(k+1)*n], prob, k)
	}
	out.Reformatted = true
	out.Timings.Infer = infer
	out.Timings.Reformat = time.Since(t0) - infer
	return out, nil
}

// stack makes the normalised slices the runner sees, with their context slices when the model
// takes some: for channels step slices apart, a pool of up to 2*context*step+1 slice buffers
// (fewer when that would pass stackBudget bytes), so that as the runner walks the series each
// slice is made once.
type stack struct {
	context, step, rows, cols, n int
	make                         func(dst []float32, k int)
	bufs                         [][]float32
	made                         []int // which slice each buffer holds, -1 for none
	used                         []int // the call that last used each buffer
	calls                        int
}

// stackBudget bounds the pool of a context model's slices (a 512x512 slice is 1 MiB); the
// pool never has fewer than the 2*context+1 buffers one slice needs.
const stackBudget = 32 << 20

func newStack(context, step, rows, cols, n int, mk func(dst []float32, k int)) *stack {
	s := &stack{context: context, step: max(step, 1), rows: rows, cols: cols, n: n, make: mk}
	size := 2*context*s.step + 1
	if size*rows*cols*4 > stackBudget {
		size = max(2*context+1, stackBudget/(rows*cols*4))
	}
	for range max(1, min(size, n)) {
		s.bufs = append(s.bufs, make([]float32, rows*cols))
		s.made = append(s.made, -1)
		s.used = append(s.used, 0)
	}
	return s
}

// at is slice k (and, for a context model, slices k + step*j for j = -context..context,
// mirrored at the series' ends: ContextSlice).
func (s *stack) at(k int) Slice {
	s.calls++
	img := func(j int) Image { // j: a series index, 0..n-1
		b := slices.Index(s.made, j)
		if b < 0 {
			// Refill the buffer, not used by this call, whose slice is needed last: the runner
			// walks the series upwards, so a slice below the window is not needed again in this
			// pass, one above it when the window reaches it.
			for i := range s.bufs {
				if s.used[i] != s.calls && (b < 0 || s.nextUse(s.made[i], k) > s.nextUse(s.made[b], k)) {
					b = i
				}
			}
			s.make(s.bufs[b], j)
			s.made[b] = j
		}
		s.used[b] = s.calls
		return Image{Rows: s.rows, Cols: s.cols, Pix: s.bufs[b]}
	}
	if s.context == 0 {
		return Slice{Image: img(k)}
	}
	ctx := make([]Image, 0, 2*s.context+1)
	idx := make([]int, 0, 2*s.context+1)
	for j := -s.context; j <= s.context; j++ {
		i := ContextSlice(k+j*s.step, s.n)
		ctx = append(ctx, img(i))
		idx = append(idx, i)
	}
	return Slice{Image: ctx[s.context], Context: ctx, ContextIndex: idx}
}

// ContextSlice is the slice a 2.5D channel takes for index j of a series of n slices
// (docs/contracts.md): j itself inside the series, mirrored about the end slice beyond it
// (-1 is 1, n is n-2), clamped when the series is shorter than that reach. Mirroring, not
// repeating the end slice: a model shown the same slice twice at a stack's end (a short axial
// stack ending in the brain) answers with false positives there.
func ContextSlice(j, n int) int {
	if j < 0 {
		j = -j
	}
	if j > n-1 {
		j = 2*(n-1) - j
	}
	return min(max(j, 0), n-1)
}

// nextUse is how many calls after at(k) slice m is needed again as the series is walked upwards:
// within the window soon (at most step calls), above it when the window reaches it, below it
// (or none, -1) not in this pass.
func (s *stack) nextUse(m, k int) int {
	reach := s.context * s.step
	switch {
	case m < 0 || m < k-reach:
		return math.MaxInt
	case m > k+reach:
		return m - reach - k
	}
	return 0
}

func (s *Stats) add(o Stats) {
	s.TilesRun += o.TilesRun
	s.TilesSkipped += o.TilesSkipped
}

// quantize stores probabilities as bytes, round(255 p), clamped.
func quantize(dst []uint8, p []float32) {
	for i, x := range p {
		dst[i] = uint8(min(max(x*255+0.5, 0), 255))
	}
}

// At is the probability of voxel i.
func (p *Probability) At(i int) float32 { return float32(p.Q[i]) / 255 }

// Slice writes slice k's probabilities into dst (Rows*Cols values).
func (p *Probability) Slice(k int, dst []float32) {
	n := p.Geometry.Rows * p.Geometry.Cols
	for i, q := range p.Q[k*n : (k+1)*n] {
		dst[i] = float32(q) / 255
	}
}
