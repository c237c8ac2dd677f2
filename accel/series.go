package accel

import (
	"context"
	"fmt"
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
	Stats       Stats
	Timings     Timings
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
	out := &Probability{Geometry: v.Geometry, Q: make([]uint8, len(v.Pixels))}
	out.Timings.Normalize = time.Since(t0)
	fill := nm.PadValue()
	if o, err := preproc.Orient(v.Geometry, preproc.DefaultMaxTiltDeg); err == nil {
		c := o.Canonical
		z := make([]float32, c.Rows*c.Cols)
		native := make([]float32, v.Rows*v.Cols)
		t1 := time.Now()
		for k := range c.Slices() {
			n := o.NativeSlice(k)
			o.ToCanonical(z, v.Slice(n))
			nm.Apply(z, z)
			p, st, err := r.Segment(ctx, Slice{Image: Image{Rows: c.Rows, Cols: c.Cols, Pix: z}, Spacing: c.PixelSpacing, Fill: fill})
			if err != nil {
				return nil, fmt.Errorf("accel: slice %d: %w", n, err)
			}
			out.Stats.add(st)
			o.FromCanonical(native, p.Pix)
			quantize(out.Q[n*v.Rows*v.Cols:(n+1)*v.Rows*v.Cols], native)
		}
		out.Timings.Infer = time.Since(t1)
		return out, nil
	}
	return segmentReformatted(ctx, r, nm, v, out)
}

// segmentReformatted runs a sagittal or coronal series on an axial grid at its finest native
// spacing. Axial voxels beyond the native volume hold the clip floor, which normalises to the
// tile fill, like tiles beyond an image.
func segmentReformatted(ctx context.Context, r *Runner, nm preproc.Normalization, v *preproc.Volume, out *Probability) (*Probability, error) {
	t0 := time.Now()
	step := min(v.PixelSpacing[0], v.PixelSpacing[1], v.SliceSpacing)
	rf, err := preproc.NewReformat(v.Geometry, step, step, preproc.DefaultLimits())
	if err != nil {
		return nil, err
	}
	ax := rf.Axial
	plane := ax.Rows * ax.Cols
	prob := make([]float32, plane*ax.Slices())
	z := make([]float32, plane)
	fill := nm.PadValue()
	var infer time.Duration
	for k := range ax.Slices() {
		rf.ToAxialSlice(z, v.Pixels, k, float32(nm.Low))
		nm.Apply(z, z)
		t1 := time.Now()
		p, st, err := r.Segment(ctx, Slice{Image: Image{Rows: ax.Rows, Cols: ax.Cols, Pix: z}, Spacing: ax.PixelSpacing, Fill: fill})
		if err != nil {
			return nil, fmt.Errorf("accel: axial reformat slice %d: %w", k, err)
		}
		infer += time.Since(t1)
		out.Stats.add(st)
		copy(prob[k*plane:], p.Pix)
	}
	full := make([]float32, len(out.Q))
	rf.ToNative(full, prob)
	quantize(out.Q, full)
	out.Reformatted = true
	out.Timings.Infer = infer
	out.Timings.Reformat = time.Since(t0) - infer
	return out, nil
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
