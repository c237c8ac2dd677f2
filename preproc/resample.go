package preproc

import (
	"fmt"
	"math"
)

// Plane is one 2D image, row-major. Its layout equals accel.Image's, so the two convert
// into each other.
type Plane struct {
	Rows, Cols int
	Pix        []float32
}

// Resamplers keeps one Resampler per (size, spacing, scale) so that a series' slices reuse
// kernels, coordinates and buffers. It provides the two operations of accel.Resampler; it is
// not safe for concurrent use.
type Resamplers struct {
	m map[resamplerKey]*Resampler
}

type resamplerKey struct {
	rows, cols, outRows, outCols int
	spacing                      [2]float64
	scale                        float64
}

// ToScale resamples src, of pixel spacing (row, column) mm, to scale mm (anti-aliased when
// shrinking). Invalid sizes or spacings give an empty Plane.
func (rs *Resamplers) ToScale(src Plane, spacing [2]float64, scale float64) Plane {
	k := resamplerKey{rows: src.Rows, cols: src.Cols, spacing: spacing, scale: scale}
	r := rs.get(k, func() (*Resampler, error) { return NewResampler(src.Rows, src.Cols, spacing, scale) })
	return run(r, src)
}

// ToNative maps src (at a model scale) back onto a rows x cols grid, bilinear, no filter.
func (rs *Resamplers) ToNative(src Plane, rows, cols int) Plane {
	k := resamplerKey{rows: src.Rows, cols: src.Cols, outRows: rows, outCols: cols}
	r := rs.get(k, func() (*Resampler, error) { return NewResamplerTo(src.Rows, src.Cols, rows, cols) })
	return run(r, src)
}

// ToScaleBuf is ToScale writing into buf(n), a buffer of n values the caller owns (a runner
// reuses them from slice to slice).
func (rs *Resamplers) ToScaleBuf(src Plane, spacing [2]float64, scale float64, buf func(n int) []float32) Plane {
	k := resamplerKey{rows: src.Rows, cols: src.Cols, spacing: spacing, scale: scale}
	r := rs.get(k, func() (*Resampler, error) { return NewResampler(src.Rows, src.Cols, spacing, scale) })
	return runInto(r, src, buf)
}

// ToNativeBuf is ToNative writing into buf(n).
func (rs *Resamplers) ToNativeBuf(src Plane, rows, cols int, buf func(n int) []float32) Plane {
	k := resamplerKey{rows: src.Rows, cols: src.Cols, outRows: rows, outCols: cols}
	r := rs.get(k, func() (*Resampler, error) { return NewResamplerTo(src.Rows, src.Cols, rows, cols) })
	return runInto(r, src, buf)
}

func (rs *Resamplers) get(k resamplerKey, mk func() (*Resampler, error)) *Resampler {
	if r, ok := rs.m[k]; ok {
		return r
	}
	r, err := mk()
	if err != nil {
		return nil
	}
	if rs.m == nil {
		rs.m = map[resamplerKey]*Resampler{}
	}
	rs.m[k] = r
	return r
}

func run(r *Resampler, src Plane) Plane {
	return runInto(r, src, func(n int) []float32 { return make([]float32, n) })
}

func runInto(r *Resampler, src Plane, buf func(n int) []float32) Plane {
	if r == nil || len(src.Pix) != src.Rows*src.Cols {
		return Plane{}
	}
	out := Plane{Rows: r.outR, Cols: r.outC, Pix: buf(r.outR * r.outC)}
	r.Resample(out.Pix, src.Pix)
	return out
}

// ResampledSize is the in-plane size at scale mm: n' = max(1, round(n x spacing / scale)) per
// axis, rounding half to even as Python's round does.
func ResampledSize(rows, cols int, spacing [2]float64, scale float64) (int, int) {
	f := func(n int, s float64) int { return max(1, int(math.RoundToEven(float64(n)*s/scale))) }
	return f(rows, spacing[0]), f(cols, spacing[1])
}

// Resampler resamples slices of one geometry to one scale, as
// midline_model.data.resample_inplane does: an anti-aliasing Gaussian of sigma (n/n' - 1)/2
// old pixels along each shrunk axis (edges: nearest), then bilinear sampling of old coordinate
// (j + 0.5) n/n' - 0.5 with edge clamping. It keeps its buffers, so one Resampler per
// goroutine serves a whole series without allocating per slice. A large slice is split by rows
// over up to maxWorkers goroutines (spread) (each pixel's arithmetic is the same, so is the result).
type Resampler struct {
	inR, inC, outR, outC int
	rowTaps, colTaps     []float64 // kernel from the centre outwards; nil: no filter
	rowPos, colPos       []interp
	// needRows and needCols are the source rows and columns the bilinear step reads: the
	// filter computes only those (shrinking by 4 reads fewer than half of them).
	needRows, needCols []int
	tmp                []float32
	work               []scratch // one per worker
}

// scratch is one worker's line buffers.
type scratch struct{ line, lineOut, acc []float64 }

// parallelMin is the image size (source or output pixels, the larger) below which one
// goroutine does a whole Resample.
const parallelMin = 1 << 16

// interp is one output coordinate: the two source indices and their weights.
type interp struct {
	i0, i1 int
	w0, w1 float64
}

// NewResampler prepares resampling from rows x cols at spacing to scale mm.
func NewResampler(rows, cols int, spacing [2]float64, scale float64) (*Resampler, error) {
	if rows < 1 || cols < 1 || !(spacing[0] > 0) || !(spacing[1] > 0) || !(scale > 0) {
		return nil, fmt.Errorf("preproc: resample %dx%d at %v mm to %v mm", rows, cols, spacing, scale)
	}
	outR, outC := ResampledSize(rows, cols, spacing, scale)
	return newResampler(rows, cols, outR, outC, true), nil
}

// NewResamplerTo maps an image of rows x cols onto outRows x outCols with the same pixel-centre
// mapping and no filter: the way back from a model scale to the native grid (infer.to_native).
func NewResamplerTo(rows, cols, outRows, outCols int) (*Resampler, error) {
	if rows < 1 || cols < 1 || outRows < 1 || outCols < 1 {
		return nil, fmt.Errorf("preproc: resample %dx%d to %dx%d", rows, cols, outRows, outCols)
	}
	return newResampler(rows, cols, outRows, outCols, false), nil
}

func newResampler(rows, cols, outR, outC int, filter bool) *Resampler {
	r := &Resampler{inR: rows, inC: cols, outR: outR, outC: outC}
	fr, fc := float64(rows)/float64(outR), float64(cols)/float64(outC)
	if filter {
		r.rowTaps, r.colTaps = gaussianTaps((fr-1)/2), gaussianTaps((fc-1)/2)
	}
	r.rowPos, r.colPos = positions(outR, rows, fr), positions(outC, cols, fc)
	r.needRows, r.needCols = needed(r.rowPos, rows), needed(r.colPos, cols)
	r.tmp = make([]float32, rows*cols)
	for range workers(max(rows*cols, outR*outC), parallelMin) {
		r.work = append(r.work, scratch{
			line:    make([]float64, max(rows, cols)+2*max(len(r.rowTaps), len(r.colTaps))),
			lineOut: make([]float64, max(rows, cols)),
			acc:     make([]float64, cols),
		})
	}
	return r
}

// parallel runs fn over [0, n) in one contiguous chunk per worker and waits for all of them.
func (r *Resampler) parallel(n int, fn func(w *scratch, lo, hi int)) {
	spread(min(len(r.work), n), n, func(w, lo, hi int) { fn(&r.work[w], lo, hi) })
}

// OutSize returns the output rows and columns.
func (r *Resampler) OutSize() (int, int) { return r.outR, r.outC }

// Resample writes the resampled src (inRows x inCols) into dst (outRows x outCols).
func (r *Resampler) Resample(dst, src []float32) {
	img := src
	if r.rowTaps != nil || r.colTaps != nil {
		// Each source row the bilinear step reads: filtered down the columns from src, then
		// along itself in place; rows are independent, so workers need no barrier until the end.
		r.parallel(len(r.needRows), func(w *scratch, lo, hi int) {
			for _, i := range r.needRows[lo:hi] {
				row := r.tmp[i*r.inC : (i+1)*r.inC]
				if r.rowTaps != nil {
					r.filterRow(w, row, src, i)
				} else {
					copy(row, src[i*r.inC:])
				}
				if r.colTaps != nil {
					r.filterCols(w, row)
				}
			}
		})
		img = r.tmp
	}
	r.parallel(len(r.rowPos), func(_ *scratch, lo, hi int) { r.bilinear(dst, img, lo, hi) })
}

// bilinear writes output rows lo..hi-1 from the (filtered) source img.
func (r *Resampler) bilinear(dst, img []float32, lo, hi int) {
	for j := lo; j < hi; j++ {
		p := r.rowPos[j]
		a, b := img[p.i0*r.inC:], img[p.i1*r.inC:]
		out := dst[j*r.outC : (j+1)*r.outC]
		for i, q := range r.colPos {
			// scipy's order-1 map_coordinates: the footprint in C order, each coefficient
			// the value times the row weight times the column weight, summed in float64.
			t := float64(float64(a[q.i0])*p.w0) * q.w0
			t = t + float64(float64(float64(a[q.i1])*p.w0)*q.w1)
			t = t + float64(float64(float64(b[q.i0])*p.w1)*q.w0)
			t = t + float64(float64(float64(b[q.i1])*p.w1)*q.w1)
			out[i] = float32(t)
		}
	}
}

// needed lists, in order, the source indices that positions p read.
func needed(p []interp, m int) []int {
	seen := make([]bool, m)
	for _, q := range p {
		seen[q.i0], seen[q.i1] = true, true
	}
	var out []int
	for i, ok := range seen {
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// positions maps n output pixels onto m input pixels: coordinate (j + 0.5) f - 0.5, clamped to
// [0, m-1], split into two neighbours and scipy's order-1 spline weights (1 - t, then the rest
// of 1).
func positions(n, m int, f float64) []interp {
	out := make([]interp, n)
	for j := range out {
		x := float64((float64(j)+0.5)*f) - 0.5
		x = min(max(x, 0), float64(m-1))
		s := math.Floor(x)
		w0 := 1 - (x - s)
		i0 := int(s)
		out[j] = interp{i0: i0, i1: min(i0+1, m-1), w0: w0, w1: 1 - w0}
	}
	return out
}

// gaussianTaps returns scipy's normalised Gaussian kernel of sigma from the centre outwards
// (radius int(4 sigma + 0.5)), or nil when sigma is not positive.
func gaussianTaps(sigma float64) []float64 {
	if !(sigma > 1e-15) {
		return nil
	}
	radius := int(4*sigma + 0.5)
	k := make([]float64, 2*radius+1)
	c := -0.5 / (sigma * sigma)
	for i := range k {
		x := i - radius
		k[i] = math.Exp(c * float64(x*x))
	}
	sum := pairwiseSum(k)
	for i := range k {
		k[i] /= sum
	}
	return k[radius:]
}

// pairwiseSum is numpy's summation for arrays shorter than its block size of 128.
func pairwiseSum(a []float64) float64 {
	n := len(a)
	if n < 8 {
		s := 0.0
		for _, x := range a {
			s += x
		}
		return s
	}
	if n > 128 {
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
	var r [8]float64
	copy(r[:], a[:8])
	i := 8
	for ; i < n-n%8; i += 8 {
		for j := range r {
			r[j] += a[i+j]
		}
	}
	s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
	for ; i < n; i++ {
		s += a[i]
	}
	return s
}

// filterRow filters source row i along the rows axis into out, with the same arithmetic per
// pixel as filterCols: centre times the centre tap, then the pairs from the outermost in; whole
// rows at a time (cache-friendly).
func (r *Resampler) filterRow(w *scratch, out, src []float32, i int) {
	taps, rows, cols := r.rowTaps, r.inR, r.inC
	rad := len(taps) - 1
	acc := w.acc
	for j, x := range src[i*cols : (i+1)*cols] {
		acc[j] = float64(x) * taps[0]
	}
	for d := rad; d >= 1; d-- {
		a := src[min(max(i-d, 0), rows-1)*cols:][:cols]
		b := src[min(i+d, rows-1)*cols:][:cols]
		wt := taps[d]
		for j := range acc {
			acc[j] = acc[j] + float64((float64(a[j])+float64(b[j]))*wt)
		}
	}
	for j, x := range acc {
		out[j] = float32(x)
	}
}

// filterCols correlates one source row, in place, with the symmetric kernel colTaps along the
// columns axis, edges extended with the nearest value, the way scipy's correlate1d does it for a
// symmetric kernel; it computes only the columns the bilinear step reads.
func (r *Resampler) filterCols(w *scratch, row []float32) {
	taps, n := r.colTaps, r.inC
	rad := len(taps) - 1
	line := w.line[:n+2*rad]
	for i, x := range row {
		line[rad+i] = float64(x)
	}
	for i := range rad {
		line[i], line[rad+n+i] = line[rad], line[rad+n-1]
	}
	for _, i := range r.needCols {
		c := rad + i
		t := line[c] * taps[0]
		for d := rad; d >= 1; d-- {
			t = t + float64((line[c-d]+line[c+d])*taps[d])
		}
		w.lineOut[i] = t
	}
	for _, i := range r.needCols {
		row[i] = float32(w.lineOut[i])
	}
}
