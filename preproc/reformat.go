package preproc

import (
	"fmt"
	"math"
)

// Reformat maps a series in any plane (a sagittal or coronal 3D T1C, typically) onto an axial
// grid aligned with the patient axes, already canonical (IOP 1\0\0\0\1\0, inferior to superior),
// and maps results back onto the native grid, both by trilinear interpolation of the exact
// index-to-patient mappings. The axial grid covers the native voxel centres' bounding box.
type Reformat struct {
	Native Geometry
	Axial  Geometry
	// toNative maps an axial index (k, i, j) to a native index (slice, row, column):
	// native = base + k*dk + i*di + j*dj.
	base, dk, di, dj Vec3
}

// NewReformat plans the axial grid: pixels of inPlane mm, slices slice mm apart. It refuses a
// grid beyond lim.MaxVoxels and a native stack with fewer than two slices.
func NewReformat(g Geometry, inPlane, slice float64, lim Limits) (*Reformat, error) {
	if g.Slices() < 2 || !(inPlane > 0) || !(slice > 0) {
		return nil, fmt.Errorf("preproc: reformat %d slices to %v x %v mm", g.Slices(), inPlane, slice)
	}
	lo, hi := Vec3{math.Inf(1), math.Inf(1), math.Inf(1)}, Vec3{math.Inf(-1), math.Inf(-1), math.Inf(-1)}
	for _, k := range []int{0, g.Slices() - 1} {
		for _, r := range []int{0, g.Rows - 1} {
			for _, c := range []int{0, g.Cols - 1} {
				p := g.Patient(k, float64(r), float64(c))
				for a := range 3 {
					lo[a], hi[a] = min(lo[a], p[a]), max(hi[a], p[a])
				}
			}
		}
	}
	// Enough samples to cover [lo, hi] on every axis, the surplus split on both sides.
	n := func(a int, s float64) int {
		m := int(math.Ceil((hi[a]-lo[a])/s-1e-6)) + 1
		lo[a] -= (float64(m-1)*s - (hi[a] - lo[a])) / 2
		return m
	}
	rows, cols, slices := n(1, inPlane), n(0, inPlane), n(2, slice)
	if v := int64(rows) * int64(cols) * int64(slices); v > lim.MaxVoxels || rows > 4*lim.MaxMatrix || cols > 4*lim.MaxMatrix {
		return nil, fmt.Errorf("%w: axial reformat of %dx%dx%d", ErrTooLarge, rows, cols, slices)
	}
	ax := Geometry{Rows: rows, Cols: cols, RowCosine: Vec3{1, 0, 0}, ColumnCosine: Vec3{0, 1, 0}, Normal: Vec3{0, 0, 1},
		PixelSpacing: [2]float64{inPlane, inPlane}, SliceSpacing: slice}
	for k := range slices {
		ax.Positions = append(ax.Positions, Vec3{lo[0], lo[1], lo[2] + float64(k)*slice})
	}
	rf := &Reformat{Native: g, Axial: ax}
	rf.base = nativeIndexOf(g, ax.Positions[0])
	rf.dk = nativeIndexOf(g, ax.Positions[0].add(Vec3{0, 0, slice})).sub(rf.base)
	rf.di = nativeIndexOf(g, ax.Positions[0].add(Vec3{0, inPlane, 0})).sub(rf.base)
	rf.dj = nativeIndexOf(g, ax.Positions[0].add(Vec3{inPlane, 0, 0})).sub(rf.base)
	return rf, nil
}

// nativeIndexOf is the fractional (slice, row, column) of p on a uniformly spaced stack.
func nativeIndexOf(g Geometry, p Vec3) Vec3 {
	q := p.sub(g.Positions[0])
	k := q.dot(g.Normal) / g.SliceSpacing
	q = q.sub(g.Normal.scale(q.dot(g.Normal)))
	rr, rc, cc := g.RowCosine.dot(g.RowCosine), g.RowCosine.dot(g.ColumnCosine), g.ColumnCosine.dot(g.ColumnCosine)
	qr, qc := q.dot(g.RowCosine), q.dot(g.ColumnCosine)
	det := rr*cc - rc*rc
	a, b := (qr*cc-qc*rc)/det, (qc*rr-qr*rc)/det
	return Vec3{k, b / g.PixelSpacing[0], a / g.PixelSpacing[1]}
}

// ToAxial resamples v (on rf.Native) onto the axial grid; points outside the native volume get
// fill (the caller's air value, e.g. the series minimum). It holds a second volume; a runner
// short of memory takes one axial slice at a time with ToAxialSlice.
func (rf *Reformat) ToAxial(v *Volume, fill float32) *Volume {
	ax := rf.Axial
	out := &Volume{Geometry: ax, Pixels: make([]float32, ax.Rows*ax.Cols*ax.Slices()), Header: v.Header}
	for k := range ax.Slices() {
		rf.ToAxialSlice(out.Slice(k), v.Pixels, k, fill)
	}
	return out
}

// ToAxialSlice writes axial slice k (Axial.Rows x Cols) sampled from the native voxels.
func (rf *Reformat) ToAxialSlice(dst, native []float32, k int, fill float32) {
	ax := rf.Axial
	n := Vec3{float64(rf.Native.Slices()), float64(rf.Native.Rows), float64(rf.Native.Cols)}
	for i := range ax.Rows {
		p := rf.base.add(rf.dk.scale(float64(k))).add(rf.di.scale(float64(i)))
		for j := range ax.Cols {
			dst[i*ax.Cols+j] = trilinear(native, n, p.add(rf.dj.scale(float64(j))), fill, false)
		}
	}
}

// ToNative maps an axial volume (a probability map on rf.Axial) back onto the native grid;
// dst holds Native.Rows x Cols x slices values. The axial grid covers every native voxel, so
// edge clamping only absorbs rounding.
func (rf *Reformat) ToNative(dst, src []float32) {
	g, ax := rf.Native, rf.Axial
	n := Vec3{float64(ax.Slices()), float64(ax.Rows), float64(ax.Cols)}
	o := ax.Positions[0]
	for k := range g.Slices() {
		for r := range g.Rows {
			for c := range g.Cols {
				q := g.Patient(k, float64(r), float64(c)).sub(o)
				idx := Vec3{q[2] / ax.SliceSpacing, q[1] / ax.PixelSpacing[0], q[0] / ax.PixelSpacing[1]}
				dst[(k*g.Rows+r)*g.Cols+c] = trilinear(src, n, idx, 0, true)
			}
		}
	}
}

// ToNativeSlice maps a byte-quantised axial map (q = round(255 p) on rf.Axial, as accel stores
// probabilities) onto native slice k, rounding to the nearest byte; dst holds Native.Rows x
// Cols values. One slice at a time, so that nothing the size of a float volume is held.
func (rf *Reformat) ToNativeSlice(dst, src []uint8, k int) {
	g, ax := rf.Native, rf.Axial
	n := Vec3{float64(ax.Slices()), float64(ax.Rows), float64(ax.Cols)}
	o := ax.Positions[0]
	for r := range g.Rows {
		for c := range g.Cols {
			q := g.Patient(k, float64(r), float64(c)).sub(o)
			idx := Vec3{q[2] / ax.SliceSpacing, q[1] / ax.PixelSpacing[0], q[0] / ax.PixelSpacing[1]}
			dst[r*g.Cols+c] = uint8(min(max(trilinear(src, n, idx, 0, true)+0.5, 0), 255))
		}
	}
}

// trilinear samples vol (n[0] slices of n[1] x n[2]) at fractional index p. Outside the
// volume (beyond 1e-6 of an index) it returns fill, unless clamp is set.
func trilinear[T float32 | uint8](vol []T, n, p Vec3, fill float32, clamp bool) float32 {
	var i0 [3]int
	var w [3]float64
	for a := range 3 {
		x := p[a]
		if x < -1e-6 || x > n[a]-1+1e-6 {
			if !clamp {
				return fill
			}
		}
		x = min(max(x, 0), n[a]-1)
		f := math.Floor(x)
		i0[a], w[a] = int(f), x-f
	}
	rows, cols := int(n[1]), int(n[2])
	at := func(k, r, c int) float64 {
		k, r, c = min(k, int(n[0])-1), min(r, rows-1), min(c, cols-1)
		return float64(vol[(k*rows+r)*cols+c])
	}
	var s float64
	for dk := range 2 {
		for dr := range 2 {
			for dc := range 2 {
				wt := pick(w[0], dk) * pick(w[1], dr) * pick(w[2], dc)
				if wt != 0 {
					s += wt * at(i0[0]+dk, i0[1]+dr, i0[2]+dc)
				}
			}
		}
	}
	return float32(s)
}

func pick(w float64, d int) float64 {
	if d == 0 {
		return 1 - w
	}
	return w
}
