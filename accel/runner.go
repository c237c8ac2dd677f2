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
	model  TileModel
	plan   Plan
	rs     Resampler
	order  []int
	weight []float32
	// The plan's scale_weights in order, and their sum (added in that order), for fuse.
	scaleW    []float64
	scaleWSum float64
	in, out   []int8
	inQ       quant
	outQ      quant
	noGate    bool // tests: run every tile whatever roi_gate says
	// Per-slice accumulators, kept between slices so that a series makes little garbage (a
	// garbage-collected heap grows with what it frees, and the box has little memory).
	acc, wsum []float64
	native    [][]float32 // each scale's probability of the slice at hand on its native grid
	// Flip test-time augmentation: the mirrored tile's input and output.
	flipIn, flipOut []int8
	scratch         arena  // one slice's images, reused by the next slice
	open            []bool // the tiles the gate opens on the slice at hand
	scaled          scaledSlices
	// quantized holds each channel of the slice at hand at the scale at hand, quantised once,
	// when the slice does not say which series slices its channels are (scaledSlices keeps
	// those).
	quantized [][]int8
}

// scaledSlices keeps, during one scale's pass over a series, the series slices already
// resampled to that scale, by series index (Slice.ContextIndex), so that a 2.5D model's slice
// is resampled and quantised once, not once per channel that shows it. Entries below the lowest
// index the slice at hand uses are free again: the pass walks the series upwards.
type scaledSlices struct {
	idx []int    // the series index each entry holds, -1 for none
	img []Image  // its image at the pass's scale, whose buffer the entry's next slice reuses
	q   [][]int8 // img quantised with the model's input parameters
}

func (c *scaledSlices) reset() {
	for i := range c.idx {
		c.idx[i] = -1
	}
}

// scaledSlice returns series slice j, src, at scale mm, and its quantised pixels, resampling
// it only when no entry holds it; index is the ContextIndex of the slice at hand.
func (r *Runner) scaledSlice(j int, index []int, src Image, spacing [2]float64, scale float64) (Image, []int8) {
	c := &r.scaled
	if e := slices.Index(c.idx, j); e >= 0 {
		return c.img[e], c.q[e]
	}
	// Reuse the entry of the lowest index this slice does not show (never one it shows: its
	// image may already be one of this slice's channels), if it lies below the slice's lowest
	// index or the entries already cover the slice's span, the most an upward walk needs.
	low, high := slices.Min(index), slices.Max(index)
	e := -1
	for i, x := range c.idx {
		if !slices.Contains(index, x) && (e < 0 || x < c.idx[e]) {
			e = i
		}
	}
	if e < 0 || (c.idx[e] >= low && len(c.idx) < high-low+1) {
		c.idx, c.img, c.q = append(c.idx, -1), append(c.img, Image{}), append(c.q, nil)
		e = len(c.idx) - 1
	}
	old := c.img[e].Pix
	c.idx[e], c.img[e] = j, r.toScaleInto(src, spacing, scale, func(n int) []float32 {
		if cap(old) < n {
			return make([]float32, n)
		}
		return old[:n]
	})
	c.q[e] = r.inQ.quantizeAll(c.q[e], c.img[e].Pix)
	return c.img[e], c.q[e]
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
	return r.toScaleInto(src, spacing, scale, r.scratch.get)
}

// toScaleInto is toScale writing into buf(n) when the resampler takes buffers.
func (r *Runner) toScaleInto(src Image, spacing [2]float64, scale float64, buf func(n int) []float32) Image {
	if b, ok := r.rs.(bufferedResampler); ok {
		return b.ToScaleBuf(src, spacing, scale, buf)
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
	for _, si := range r.order {
		r.scaleW = append(r.scaleW, p.ScaleWeights[si])
		r.scaleWSum += p.ScaleWeights[si]
	}
	return r, nil
}

// Segment returns the fused probability of one slice on its native grid.
func (r *Runner) Segment(ctx context.Context, s Slice) (Image, Stats, error) {
	var out Image
	st, err := r.segmentSeries(ctx, 1, 0, func(int) Slice { return s }, func(_ int, p Image) {
		out = Image{Rows: p.Rows, Cols: p.Cols, Pix: slices.Clone(p.Pix)}
	})
	return out, st, err
}

// GateSlabMM is how far along the slice normal a coarse scale's finding opens the finer scale's
// tiles (docs/contracts.md, Tiled inference). At 2 mm the model sees a lesion's thin end slices at
// a quarter of the pixels and often gives them nothing, while the 1 mm tiles find them; the
// neighbouring slices' coarse probability brings those tiles back.
const GateSlabMM = 20.0

// gateReach is how many slices on either side the gate reaches at slice spacing mm. The
// spacing comes from positions written as decimal strings, so 5 mm slices may measure
// 5.000002 mm here and 4.999999 there: the tolerance of a thousandth of a slice keeps every
// reader (and the Python reference) on the same side of a whole number.
func gateReach(spacing float64) int {
	if !(spacing > 0) {
		return 0
	}
	return int(math.Floor(GateSlabMM/spacing + 1e-3))
}

// segmentSeries runs n slices, spaced sliceMM apart, through every scale, coarsest first, one
// pass over the slices per scale, so that a finer scale's gate on slice k can use the coarser
// probability of slices within GateSlabMM. at(k) gives slice k (asked for again in each pass);
// emit(k, p) receives slice k's fused probability, valid until emit returns. Each non-finest
// scale's probability of every slice is kept, on that scale's coarser grid, until the last pass
// fuses it.
func (r *Runner) segmentSeries(ctx context.Context, n int, sliceMM float64, at func(k int) Slice, emit func(k int, p Image)) (Stats, error) {
	var stats Stats
	last := len(r.order) - 1
	kept := make([][]Image, last) // kept[i][k]: scale r.order[i]'s probability of slice k
	reach := gateReach(sliceMM)
	var pass [][]bool // pass[k]: this scale's tiles that slice k's own coarser probability opens
	for i, si := range r.order {
		scale := r.plan.ScalesMM[si]
		r.scaled.reset()
		var next [][]bool
		if i < last {
			kept[i] = make([]Image, n)
			if !r.noGate && r.plan.RoiGate > 0 { // a gate of 0 opens every tile: nothing to compute
				next = make([][]bool, n)
			}
		}
		for k := range n {
			r.scratch.reset()
			s := at(k)
			channels, err := r.channels(s)
			if err != nil {
				return stats, fmt.Errorf("slice %d: %w", k, err)
			}
			zs, qs := make([]Image, len(channels)), make([][]int8, len(channels))
			for c, img := range channels {
				if len(s.ContextIndex) == len(channels) {
					zs[c], qs[c] = r.scaledSlice(s.ContextIndex[c], s.ContextIndex, img, s.Spacing, scale)
				} else {
					zs[c] = r.toScale(img, s.Spacing, scale)
					if c == len(r.quantized) {
						r.quantized = append(r.quantized, nil)
					}
					r.quantized[c] = r.inQ.quantizeAll(r.quantized[c], zs[c].Pix)
					qs[c] = r.quantized[c]
				}
			}
			var open []bool
			if pass != nil {
				open = r.openTiles(pass, k-reach, k+reach)
			}
			ps, err := r.runScale(ctx, zs[0].Rows, zs[0].Cols, qs, s.Fill, open, &stats)
			if err != nil {
				return stats, fmt.Errorf("slice %d: %w", k, err)
			}
			rows, cols := s.Image.Rows, s.Image.Cols
			if i < last {
				kept[i][k] = Image{Rows: ps.Rows, Cols: ps.Cols, Pix: slices.Clone(ps.Pix)}
				if next != nil {
					finer := r.plan.ScalesMM[r.order[i+1]]
					g := dilateMax(r.toScale(r.toNative(ps, rows, cols), s.Spacing, finer), r.plan.Stride(), r.scratch.get)
					next[k] = r.tilesOver(g)
				}
				continue
			}
			r.native = r.native[:0]
			for j := range r.order {
				p := ps
				if j < last {
					p = kept[j][k]
				}
				r.native = append(r.native, r.toNative(p, rows, cols).Pix)
			}
			emit(k, r.fuse(r.native, rows, cols))
		}
		pass = next
	}
	return stats, nil
}

// fuse weighs the scales' probabilities of one slice, mapped onto its native grid (in r.order),
// into one image: in one pass, each pixel's sum in float64 in scale order and rounded once, so
// that a constant model gives exactly its constant.
func (r *Runner) fuse(native [][]float32, rows, cols int) Image {
	out := Image{Rows: rows, Cols: cols, Pix: r.scratch.get(rows * cols)}
	for x := range out.Pix {
		var v float64
		for j, p := range native {
			v += r.scaleW[j] * float64(p[x])
		}
		out.Pix[x] = float32(v / r.scaleWSum)
	}
	return out
}

// channels checks a slice and returns the images a tile is cut from: the slice, or its context.
func (r *Runner) channels(s Slice) ([]Image, error) {
	if s.Image.Rows <= 0 || s.Image.Cols <= 0 || len(s.Image.Pix) != s.Image.Rows*s.Image.Cols {
		return nil, fmt.Errorf("accel: slice of %dx%d with %d values", s.Image.Rows, s.Image.Cols, len(s.Image.Pix))
	}
	if r.plan.Context == 0 {
		return []Image{s.Image}, nil
	}
	if len(s.Context) != r.plan.Channels() {
		return nil, fmt.Errorf("accel: %d context slices given, the model takes %d", len(s.Context), r.plan.Channels())
	}
	for _, c := range s.Context {
		if c.Rows != s.Image.Rows || c.Cols != s.Image.Cols || len(c.Pix) != len(s.Image.Pix) {
			return nil, fmt.Errorf("accel: context slice of %dx%d for a slice of %dx%d", c.Rows, c.Cols, s.Image.Rows, s.Image.Cols)
		}
	}
	return s.Context, nil
}

// tilesOver says, for each tile of an image of g's size (TileOrigins rows by columns), whether
// the gate g reaches roi_gate somewhere in its window.
func (r *Runner) tilesOver(g Image) []bool {
	tops, lefts := TileOrigins(g.Rows, r.plan.Size, r.plan.Overlap), TileOrigins(g.Cols, r.plan.Size, r.plan.Overlap)
	open := make([]bool, 0, len(tops)*len(lefts))
	for _, top := range tops {
		for _, left := range lefts {
			open = append(open, windowMax(g, top, left, r.plan.Size) >= float32(r.plan.RoiGate))
		}
	}
	return open
}

// openTiles is the union of pass[from..to] (clamped to the series): a tile runs on a slice when
// the coarser scale opened it there or on a slice within reach.
func (r *Runner) openTiles(pass [][]bool, from, to int) []bool {
	from, to = max(from, 0), min(to, len(pass)-1)
	r.open = append(r.open[:0], pass[from]...)
	for _, p := range pass[from+1 : to+1] {
		for t, on := range p {
			r.open[t] = r.open[t] || on
		}
	}
	return r.open
}

// runScale tiles one slice resampled to rows x cols and quantised (one image per input
// channel), runs the tiles open says (all when it is nil), and blends them.
func (r *Runner) runScale(ctx context.Context, rows, cols int, qs [][]int8, fill float32, open []bool, stats *Stats) (Image, error) {
	size := r.plan.Size
	n := rows * cols
	acc, wsum := zeroed(&r.acc, n), zeroed(&r.wsum, n)
	lefts := TileOrigins(cols, size, r.plan.Overlap)
	qfill := r.inQ.quantize(fill)
	for ti, top := range TileOrigins(rows, size, r.plan.Overlap) {
		for tj, left := range lefts {
			if open != nil && !open[ti*len(lefts)+tj] {
				stats.TilesSkipped++
				continue
			}
			r.cutTile(qs, rows, cols, top, left, qfill)
			if err := r.model.Run(ctx, r.in, r.out); err != nil {
				return Image{}, fmt.Errorf("accel: tile at (%d, %d): %w", top, left, err)
			}
			stats.TilesRun++
			if r.plan.FlipTTA {
				mirror(r.flipIn, r.in, size, len(qs))
				if err := r.model.Run(ctx, r.flipIn, r.flipOut); err != nil {
					return Image{}, fmt.Errorf("accel: mirrored tile at (%d, %d): %w", top, left, err)
				}
			}
			r.blend(acc, wsum, rows, cols, top, left)
		}
	}
	p := Image{Rows: rows, Cols: cols, Pix: r.scratch.get(n)}
	clear(p.Pix)
	for i, w := range wsum {
		if w > 0 {
			p.Pix[i] = float32(acc[i] / w)
		}
	}
	return p, nil
}

// cutTile fills the model's input with the window at (top, left) of every channel's quantised
// pixels (rows x cols), interleaved (NHWC), qfill outside the image.
func (r *Runner) cutTile(qs [][]int8, rows, cols, top, left int, qfill int8) {
	size, nc := r.plan.Size, len(qs)
	// Columns x0..x1-1 of the tile lie inside the image.
	x0, x1 := min(max(-left, 0), size), min(max(cols-left, 0), size)
	x1 = max(x1, x0)
	for y := range size {
		dst := r.in[y*size*nc : (y+1)*size*nc]
		row := top + y
		if row < 0 || row >= rows || x1 == x0 {
			for i := range dst {
				dst[i] = qfill
			}
			continue
		}
		for i := range dst[:x0*nc] {
			dst[i] = qfill
		}
		for i := range dst[x1*nc:] {
			dst[x1*nc+i] = qfill
		}
		inside := dst[x0*nc : x1*nc]
		if nc == 1 {
			copy(inside, qs[0][row*cols+left+x0:row*cols+left+x1])
			continue
		}
		for c, q := range qs {
			for i, v := range q[row*cols+left+x0 : row*cols+left+x1] {
				inside[i*nc+c] = v
			}
		}
	}
}

// quantizeAll quantises src into dst (resized to len(src), its memory reused when large
// enough) with the model's input parameters, as quantize does each value.
func (q quant) quantizeAll(dst []int8, src []float32) []int8 {
	if cap(dst) < len(src) {
		dst = make([]int8, len(src))
	}
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = q.quantize(v)
	}
	return dst
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
	// Clamped first (beyond int8's range rounding changes nothing), a float32 of magnitude below
	// 2^22 rounds to the nearest integer, ties to even, by adding and subtracting 1.5 * 2^23:
	// the sum has no bits below 1. The same as math.RoundToEven, without the float64 detour.
	f := min(max(v/q.scale, -512), 512)
	f = float32(f+roundHalfEven) - roundHalfEven // the conversion rounds the sum (Go spec: no fused form)
	return int8(min(127, max(-128, f+q.zero)))
}

// roundHalfEven is 1.5 * 2^23 (quant.quantize).
const roundHalfEven float32 = 12582912

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
