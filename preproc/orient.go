package preproc

import (
	"fmt"
	"math"
)

// The models are trained on axial slices whose rows run to the patient's posterior and whose
// columns run to the patient's left (ImageOrientationPatient 1\0\0\0\1\0, LPS), stacked from
// inferior to superior. Orientation brings a near-axial series there by a permutation of its
// pixels (transpose, flips, slice order), so the way back is exact; Reformat resamples a series
// in another plane onto an axial grid and back.

// DefaultMaxTiltDeg is the largest angle between a series' normal and the patient's
// head-foot axis that Orient accepts: beyond it the series is coronal or sagittal.
const DefaultMaxTiltDeg = 45

// Orientation maps a near-axial series onto the canonical plane and handedness.
type Orientation struct {
	Transpose     bool // canonical rows are native columns
	FlipRows      bool // canonical row index runs against the native one (after Transpose)
	FlipCols      bool
	ReverseSlices bool // canonical slice k is native slice n-1-k
	Native        Geometry
	Canonical     Geometry
}

// Orient finds the in-plane transpose and flips that take g closest to canonical, and the
// canonical geometry. It refuses a series tilted more than maxTiltDeg from axial.
func Orient(g Geometry, maxTiltDeg float64) (Orientation, error) {
	if tilt := math.Acos(min(1, math.Abs(g.Normal[2]))) * 180 / math.Pi; tilt > maxTiltDeg {
		return Orientation{}, fmt.Errorf("preproc: slice normal %.0f degrees from the head-foot axis (at most %g): not an axial series; reformat it", tilt, maxTiltDeg)
	}
	o := Orientation{Native: g}
	r, c := g.RowCosine, g.ColumnCosine
	// The index axis closer to the patient's left-right axis becomes the column axis.
	if math.Abs(c[0])-math.Abs(c[1]) > math.Abs(r[0])-math.Abs(r[1]) {
		o.Transpose = true
		r, c = c, r
	}
	o.FlipCols = r[0] < 0
	o.FlipRows = c[1] < 0
	o.Canonical = o.geometry()
	o.ReverseSlices = o.Canonical.Normal.dot(g.Normal) < 0
	if o.ReverseSlices {
		o.Canonical.Positions = reversed(o.Canonical.Positions)
	}
	return o, nil
}

func reversed(p []Vec3) []Vec3 {
	out := make([]Vec3, len(p))
	for i, v := range p {
		out[len(p)-1-i] = v
	}
	return out
}

// geometry is the canonical geometry before slice reversal.
func (o Orientation) geometry() Geometry {
	g := o.Native
	out := Geometry{Rows: g.Rows, Cols: g.Cols, RowCosine: g.RowCosine, ColumnCosine: g.ColumnCosine,
		PixelSpacing: g.PixelSpacing, SliceSpacing: g.SliceSpacing}
	if o.Transpose {
		out.Rows, out.Cols = g.Cols, g.Rows
		out.RowCosine, out.ColumnCosine = g.ColumnCosine, g.RowCosine
		out.PixelSpacing = [2]float64{g.PixelSpacing[1], g.PixelSpacing[0]}
	}
	if o.FlipCols {
		out.RowCosine = out.RowCosine.scale(-1)
	}
	if o.FlipRows {
		out.ColumnCosine = out.ColumnCosine.scale(-1)
	}
	out.Normal = out.RowCosine.cross(out.ColumnCosine).unit()
	for k := range g.Positions {
		// The canonical (0, 0) pixel is a native corner: where that pixel lies.
		r, c := o.nativeIndex(0, 0, out.Rows, out.Cols)
		out.Positions = append(out.Positions, g.Patient(k, float64(r), float64(c)))
	}
	return out
}

// nativeIndex maps canonical (i, j) of a rows x cols canonical slice to native (r, c).
func (o Orientation) nativeIndex(i, j, rows, cols int) (int, int) {
	if o.FlipRows {
		i = rows - 1 - i
	}
	if o.FlipCols {
		j = cols - 1 - j
	}
	if o.Transpose {
		return j, i
	}
	return i, j
}

// CanonicalPoint maps a fractional native pixel position (row r, column c) to the canonical
// slice's (row, column): the inverse of the permutation ToCanonical applies, for contours.
func (o Orientation) CanonicalPoint(r, c float64) (float64, float64) {
	i, j := r, c
	if o.Transpose {
		i, j = c, r
	}
	if o.FlipRows {
		i = float64(o.Canonical.Rows-1) - i
	}
	if o.FlipCols {
		j = float64(o.Canonical.Cols-1) - j
	}
	return i, j
}

// NativeSlice returns the native slice index of canonical slice k.
func (o Orientation) NativeSlice(k int) int {
	if o.ReverseSlices {
		return len(o.Native.Positions) - 1 - k
	}
	return k
}

// ToCanonical writes native slice src into canonical slice dst (both Rows*Cols long).
func (o Orientation) ToCanonical(dst, src []float32) {
	rows, cols := o.Canonical.Rows, o.Canonical.Cols
	for i := range rows {
		base, step := o.nativeRow(i)
		out := dst[i*cols : (i+1)*cols]
		if step == 1 {
			copy(out, src[base:base+cols])
			continue
		}
		for j := range out {
			out[j] = src[base+j*step]
		}
	}
}

// FromCanonical writes canonical slice src (a model's output) back onto native slice dst.
func (o Orientation) FromCanonical(dst, src []float32) {
	rows, cols := o.Canonical.Rows, o.Canonical.Cols
	for i := range rows {
		base, step := o.nativeRow(i)
		in := src[i*cols : (i+1)*cols]
		if step == 1 {
			copy(dst[base:base+cols], in)
			continue
		}
		for j, v := range in {
			dst[base+j*step] = v
		}
	}
}

// nativeRow says where canonical row i lies in the native slice: canonical pixel (i, j) is
// native element base + j*step (nativeIndex, one row at a time; the hot path orients every
// slice of a series twice).
func (o Orientation) nativeRow(i int) (base, step int) {
	rows, cols, nc := o.Canonical.Rows, o.Canonical.Cols, o.Native.Cols
	r0, c0 := o.nativeIndex(i, 0, rows, cols)
	base = r0*nc + c0
	if cols < 2 {
		return base, 1
	}
	r1, c1 := o.nativeIndex(i, 1, rows, cols)
	return base, (r1*nc + c1) - base
}

// CanonicalVolume returns v in the canonical orientation (a copy); the header and per-slice
// instance references follow their slices.
func (o Orientation) CanonicalVolume(v *Volume) *Volume {
	out := &Volume{Geometry: o.Canonical, Pixels: make([]float32, len(v.Pixels)), Header: v.Header}
	for k := range v.Slices() {
		n := o.NativeSlice(k)
		o.ToCanonical(out.Slice(k), v.Slice(n))
		if len(v.SOPInstanceUIDs) == v.Slices() && len(v.Frames) == v.Slices() {
			out.SOPInstanceUIDs = append(out.SOPInstanceUIDs, v.SOPInstanceUIDs[n])
			out.Frames = append(out.Frames, v.Frames[n])
		}
	}
	return out
}
