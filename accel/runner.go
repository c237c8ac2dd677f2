package accel

import (
	"context"
	"fmt"
	"math"
	"slices"
)

// Runner segments slices with a model by the tiled multi-scale plan of its bundle. It owns one
// tile's input and output buffers and the blending weights, so the hot path allocates only the
// per-slice images. A Runner is not safe for concurrent use.
type Runner struct {
	model   TileModel
	plan    Plan
	rs      Resampler
	order   []int
	weight  []float32
	in, out []int8
	inQ     quant
	outQ    quant
	noGate  bool // tests: run every tile whatever roi_gate says
	// Per-slice accumulators, kept between slices so that a series makes little garbage (a
	// garbage-collected heap grows with what it frees, and the box has little memory).
	fused, acc, wsum []float64
	// Flip test-time augmentation: the mirrored tile's input and output.
	flipIn, flipOut []int8
	scratch         arena // one slice's images, reused by the next slice
}

// arena hands out float32 buffers that stay valid until reset: the images of one Segment call.
// Slices of a series ask for the same sizes in the same order, so after the first slice nothing
// is allocated.
type arena struct {
	bufs [][]float32
	next int
}

func (a *arena) get(n int) []float32 {
	if a.next == len(a.bufs) {
		a.bufs = append(a.bufs, nil)
	}
	if cap(a.bufs[a.next]) < n {
		a.bufs[a.next] = make([]float32, n)
	}
	b := a.bufs[a.next][:n]
	a.next++
	return b
}

func (a *arena) reset() { a.next = 0 }

// bufferedResampler is a Resampler that writes into buffers the caller hands it
// (preproc.Resamplers is one), so that the runner makes no garbage per slice.
type bufferedResampler interface {
	ToScaleBuf(src Image, spacing [2]float64, scale float64, buf func(n int) []float32) Image
	ToNativeBuf(src Image, rows, cols int, buf func(n int) []float32) Image
}

func (r *Runner) toScale(src Image, spacing [2]float64, scale float64) Image {
	if b, ok := r.rs.(bufferedResampler); ok {
		return b.ToScaleBuf(src, spacing, scale, r.scratch.get)
	}
	return r.rs.ToScale(src, spacing, scale)
}

func (r *Runner) toNative(src Image, rows, cols int) Image {
	if b, ok := r.rs.(bufferedResampler); ok {
		return b.ToNativeBuf(src, rows, cols, r.scratch.get)
	}
	return r.rs.ToNative(src, rows, cols)
}

// zeroed returns buf resized to n zeros, reusing its memory when it is large enough.
func zeroed(buf *[]float64, n int) []float64 {
	if cap(*buf) < n {
		*buf = make([]float64, n)
	}
	b := (*buf)[:n]
	clear(b)
	return b
}

type quant struct {
	scale float32
	zero  float32
}

// NewRunner checks that the model's tensors fit the plan: [1, size, size, 2*context+1] in and
// [1, size, size, 1] out.
func NewRunner(m TileModel, p Plan, rs Resampler) (*Runner, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	for i, t := range []TensorInfo{m.Input(), m.Output()} {
		want := []int{1, p.Size, p.Size, 1}
		if i == 0 {
			want[3] = p.Channels()
		}
		if !slices.Equal(t.Shape, want) {
			return nil, fmt.Errorf("accel: tensor %q has shape %v, the bundle's plan wants %v", t.Name, t.Shape, want)
		}
	}
	n := p.Size * p.Size
	r := &Runner{
		model: m, plan: p, rs: rs, order: p.scaleOrder(), weight: gaussianWeight(p.Size),
		in: make([]int8, n*p.Channels()), out: make([]int8, n),
		inQ:  quant{float32(m.Input().Scale), float32(m.Input().ZeroPoint)},
		outQ: quant{float32(m.Output().Scale), float32(m.Output().ZeroPoint)},
	}
	if p.FlipTTA {
		r.flipIn, r.flipOut = make([]int8, n*p.Channels()), make([]int8, n)
	}
	return r, nil
}

// Segment returns the fused probability of one slice on its native grid.
func (r *Runner) Segment(ctx context.Context, s Slice) (Image, Stats, error) {
	p, st, err := r.segment(ctx, s)
	if err != nil {
		return Image{}, st, err
	}
	return Image{Rows: p.Rows, Cols: p.Cols, Pix: slices.Clone(p.Pix)}, st, nil
}

// segment is Segment with its result in the runner's scratch: valid until the next call.
func (r *Runner) segment(ctx context.Context, s Slice) (Image, Stats, error) {
	r.scratch.reset()
	var stats Stats
	if s.Image.Rows <= 0 || s.Image.Cols <= 0 || len(s.Image.Pix) != s.Image.Rows*s.Image.Cols {
		return Image{}, stats, fmt.Errorf("accel: slice of %dx%d with %d values", s.Image.Rows, s.Image.Cols, len(s.Image.Pix))
	}
	channels := []Image{s.Image}
	if r.plan.Context > 0 {
		if len(s.Context) != r.plan.Channels() {
			return Image{}, stats, fmt.Errorf("accel: %d context slices given, the model takes %d", len(s.Context), r.plan.Channels())
		}
		for _, c := range s.Context {
			if c.Rows != s.Image.Rows || c.Cols != s.Image.Cols || len(c.Pix) != len(s.Image.Pix) {
				return Image{}, stats, fmt.Errorf("accel: context slice of %dx%d for a slice of %dx%d", c.Rows, c.Cols, s.Image.Rows, s.Image.Cols)
			}
		}
		channels = s.Context
	}
	// Accumulate in float64 and round once: a constant model then gives exactly its constant.
	fused := zeroed(&r.fused, s.Image.Rows*s.Image.Cols)
	var coarse Image
	var weights float64
	for i, si := range r.order {
		scale := r.plan.ScalesMM[si]
		zs := make([]Image, len(channels))
		for c, img := range channels {
			zs[c] = r.toScale(img, s.Spacing, scale)
		}
		var gate *Image
		if i > 0 && !r.noGate {
			g := dilateMax(r.toScale(coarse, s.Spacing, scale), r.plan.Stride(), r.scratch.get)
			gate = &g
		}
		ps, err := r.runScale(ctx, zs, s.Fill, gate, &stats)
		if err != nil {
			return Image{}, stats, err
		}
		native := r.toNative(ps, s.Image.Rows, s.Image.Cols)
		w := r.plan.ScaleWeights[si]
		for j, v := range native.Pix {
			fused[j] += w * float64(v)
		}
		weights += w
		coarse = native
	}
	out := Image{Rows: s.Image.Rows, Cols: s.Image.Cols, Pix: r.scratch.get(len(fused))}
	for j, v := range fused {
		out.Pix[j] = float32(v / weights)
	}
	return out, stats, nil
}

// runScale tiles one resampled slice (one image per input channel), runs the tiles the gate
// lets through, and blends them.
func (r *Runner) runScale(ctx context.Context, zs []Image, fill float32, gate *Image, stats *Stats) (Image, error) {
	size := r.plan.Size
	z := zs[0]
	n := z.Rows * z.Cols
	acc, wsum := zeroed(&r.acc, n), zeroed(&r.wsum, n)
	for _, top := range TileOrigins(z.Rows, size, r.plan.Overlap) {
		for _, left := range TileOrigins(z.Cols, size, r.plan.Overlap) {
			if gate != nil && windowMax(*gate, top, left, size) < float32(r.plan.RoiGate) {
				stats.TilesSkipped++
				continue
			}
			r.quantizeTile(zs, top, left, fill)
			if err := r.model.Run(ctx, r.in, r.out); err != nil {
				return Image{}, fmt.Errorf("accel: tile at (%d, %d): %w", top, left, err)
			}
			stats.TilesRun++
			if r.plan.FlipTTA {
				mirror(r.flipIn, r.in, size, len(zs))
				if err := r.model.Run(ctx, r.flipIn, r.flipOut); err != nil {
					return Image{}, fmt.Errorf("accel: mirrored tile at (%d, %d): %w", top, left, err)
				}
			}
			r.blend(acc, wsum, z.Rows, z.Cols, top, left)
		}
	}
	p := Image{Rows: z.Rows, Cols: z.Cols, Pix: r.scratch.get(n)}
	clear(p.Pix)
	for i, w := range wsum {
		if w > 0 {
			p.Pix[i] = float32(acc[i] / w)
		}
	}
	return p, nil
}

// quantizeTile fills the model's input with the window at (top, left) of every channel,
// interleaved (NHWC), `fill` outside the image, quantised with the model's own parameters
// (round half to even, as numpy does).
func (r *Runner) quantizeTile(zs []Image, top, left int, fill float32) {
	size, nc := r.plan.Size, len(zs)
	qfill := r.inQ.quantize(fill)
	for y := range size {
		row := top + y
		for x := range size {
			col := left + x
			inside := row >= 0 && row < zs[0].Rows && col >= 0 && col < zs[0].Cols
			for c, z := range zs {
				q := qfill
				if inside {
					q = r.inQ.quantize(z.Pix[row*z.Cols+col])
				}
				r.in[(y*size+x)*nc+c] = q
			}
		}
	}
}

// mirror writes src (size x size pixels of nc channels) flipped left to right into dst.
func mirror(dst, src []int8, size, nc int) {
	for y := range size {
		for x := range size {
			copy(dst[(y*size+x)*nc:(y*size+x+1)*nc], src[(y*size+size-1-x)*nc:(y*size+size-x)*nc])
		}
	}
}

func (q quant) quantize(v float32) int8 {
	f := math.RoundToEven(float64(v/q.scale)) + float64(q.zero)
	return int8(min(127, max(-128, f)))
}

// blend adds the output tile, dequantised and weighted, into the slice's buffers.
func (r *Runner) blend(acc, wsum []float64, rows, cols, top, left int) {
	size := r.plan.Size
	for y := range size {
		row := top + y
		if row < 0 || row >= rows {
			continue
		}
		for x := range size {
			col := left + x
			if col < 0 || col >= cols {
				continue
			}
			w := float64(r.weight[y*size+x])
			p := float64((float32(r.out[y*size+x]) - r.outQ.zero) * r.outQ.scale)
			if r.plan.FlipTTA {
				pf := float64((float32(r.flipOut[y*size+size-1-x]) - r.outQ.zero) * r.outQ.scale)
				p = (p + pf) / 2
			}
			acc[row*cols+col] += p * w
			wsum[row*cols+col] += w
		}
	}
}

// windowMax is the largest gate value inside a tile's window on the image.
func windowMax(g Image, top, left, size int) float32 {
	m := float32(math.Inf(-1))
	for row := max(top, 0); row < min(top+size, g.Rows); row++ {
		for col := max(left, 0); col < min(left+size, g.Cols); col++ {
			m = max(m, g.Pix[row*g.Cols+col])
		}
	}
	return m
}

// dilateMax is a square maximum filter of half-width k, the window clipped at the edges: a
// pass along each row, then one along each column. buf gives its buffers.
func dilateMax(src Image, k int, buf func(n int) []float32) Image {
	rows := maxAlong(src, k, 1, src.Cols, src.Cols, src.Rows, buf)
	return maxAlong(rows, k, src.Cols, 1, src.Rows, src.Cols, buf)
}

// maxAlong takes the running maximum of half-width k along `lines` lines of n values each; value
// i of line l sits at l*lineStep + i*step. It costs O(n) per line whatever k (van Herk and
// Gil-Werman: within blocks of 2k+1 values, maxima from each block's start and from its end;
// a window spans at most two blocks).
func maxAlong(in Image, k, step, lineStep, n, lines int, buf func(n int) []float32) Image {
	out := Image{Rows: in.Rows, Cols: in.Cols, Pix: buf(in.Rows * in.Cols)}
	w := 2*k + 1
	fromStart, toEnd := buf(n), buf(n)
	for l := range lines {
		base := l * lineStep
		at := func(i int) float32 { return in.Pix[base+i*step] }
		for i := range n {
			fromStart[i] = at(i)
			if i%w != 0 {
				fromStart[i] = max(fromStart[i-1], fromStart[i])
			}
		}
		for i := n - 1; i >= 0; i-- {
			toEnd[i] = at(i)
			if i+1 < n && (i+1)%w != 0 {
				toEnd[i] = max(toEnd[i+1], toEnd[i])
			}
		}
		for i := range n {
			a, b := max(0, i-k), min(n-1, i+k)
			var m float32
			switch {
			case a/w != b/w:
				m = max(toEnd[a], fromStart[b])
			case a%w == 0:
				m = fromStart[b]
			default: // b is the last value of the line
				m = toEnd[a]
			}
			out.Pix[base+i*step] = m
		}
	}
	return out
}
