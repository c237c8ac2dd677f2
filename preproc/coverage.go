package preproc

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// FieldOfViewCut is a side on which a series' imaged box ends inside the head, as a model that
// sees axial slices meets it: an edge of a near-axial series' slices, or, for a sagittal or
// coronal series, the first or last slice, which an axial reformat turns into the edge of every
// axial slice. The box's faces toward the head or the feet are not cuts: an axial stack ends
// there by design.
type FieldOfViewCut struct {
	Side     string  // the patient's side the face looks to: left, right, anterior or posterior
	Fraction float64 // the share of the face's voxels that are head
}

// CutFraction is the share of a face's voxels that must be head for the face to cut the head.
// On the phantoms (testdata/phantom/README.md): at most 0.40 on fields of view that clip the
// scalp, where the model works as on a whole head; 0.54 to 0.79 on 60 mm coronal and sagittal
// slabs and a 144 mm axial field of view; 0.80 to 1.00 on every side of a 96 mm one, on which
// the model finds nothing.
const CutFraction = 0.5

// HeadLevel is the share of a series' bright level (Normalization.High, the p_high percentile
// of its foreground) above which a voxel is head, not air: air is noise, far below. Otsu's
// threshold is no use here: where the head fills the field of view it splits the tissues
// instead (0.6 of High on a 96 mm field of view, 0.26 on whole heads).
const HeadLevel = 0.1

// FieldOfViewCuts returns the faces of v's box, other than those toward the head or the feet,
// of which at least CutFraction is head (above HeadLevel x nm.High, nm the series' fitted
// normalisation), most cut first. Models are trained on whole-head views: on a cut one they may
// miss a lesion entirely, and the series' normalisation, fitted on what is imaged, is off.
func FieldOfViewCuts(v *Volume, nm Normalization) []FieldOfViewCut {
	n, rows, cols := v.Slices(), v.Rows, v.Cols
	if n == 0 || rows == 0 || cols == 0 || len(v.Pixels) != n*rows*cols {
		return nil
	}
	t := float32(HeadLevel * nm.High)
	// Each face: its outward normal and its voxels, slices [k0, k1) x rows [r0, r1) x columns
	// [c0, c1).
	faces := []struct {
		normal                 Vec3
		k0, k1, r0, r1, c0, c1 int
	}{
		{v.ColumnCosine.scale(-1), 0, n, 0, 1, 0, cols},
		{v.ColumnCosine, 0, n, rows - 1, rows, 0, cols},
		{v.RowCosine.scale(-1), 0, n, 0, rows, 0, 1},
		{v.RowCosine, 0, n, 0, rows, cols - 1, cols},
		{v.Normal.scale(-1), 0, 1, 0, rows, 0, cols},
		{v.Normal, n - 1, n, 0, rows, 0, cols},
	}
	var cuts []FieldOfViewCut
	for _, f := range faces {
		if math.Abs(f.normal[2]) >= math.Sqrt2/2 { // toward the head or the feet
			continue
		}
		head := 0
		for k := f.k0; k < f.k1; k++ {
			for r := f.r0; r < f.r1; r++ {
				for _, x := range v.Pixels[(k*rows+r)*cols+f.c0 : (k*rows+r)*cols+f.c1] {
					if x > t {
						head++
					}
				}
			}
		}
		frac := float64(head) / float64((f.k1-f.k0)*(f.r1-f.r0)*(f.c1-f.c0))
		if frac < CutFraction {
			continue
		}
		side := patientSide(f.normal)
		if i := slices.IndexFunc(cuts, func(c FieldOfViewCut) bool { return c.Side == side }); i >= 0 {
			cuts[i].Fraction = max(cuts[i].Fraction, frac)
			continue
		}
		cuts = append(cuts, FieldOfViewCut{Side: side, Fraction: frac})
	}
	slices.SortStableFunc(cuts, func(a, b FieldOfViewCut) int { return cmp.Compare(b.Fraction, a.Fraction) })
	return cuts
}

// patientSide names the side of the patient (LPS: +x left, +y posterior) a direction in the
// axial plane looks to, by its larger component.
func patientSide(d Vec3) string {
	if math.Abs(d[0]) >= math.Abs(d[1]) {
		if d[0] > 0 {
			return "left"
		}
		return "right"
	}
	if d[1] > 0 {
		return "posterior"
	}
	return "anterior"
}

// FlagFieldOfViewCut is the result flag for a series whose field of view cuts the head (the
// cuts from FieldOfViewCuts, most cut first); "" when there are none.
func FlagFieldOfViewCut(cuts []FieldOfViewCut) string {
	if len(cuts) == 0 {
		return ""
	}
	parts := make([]string, len(cuts))
	for i, c := range cuts {
		parts[i] = fmt.Sprintf("%s %.0f %%", c.Side, 100*c.Fraction)
	}
	return FlagFieldOfViewCutPrefix + " (head on the edge: " + strings.Join(parts, ", ") +
		"): the model was trained on whole-head views; contours may be missing or misplaced"
}

// FlagFieldOfViewCutPrefix begins FlagFieldOfViewCut's flag.
const FlagFieldOfViewCutPrefix = "field of view cuts through the head"

// HasFieldOfViewCut says whether a result's flags hold FlagFieldOfViewCut's.
func HasFieldOfViewCut(flags []string) bool {
	return slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, FlagFieldOfViewCutPrefix) })
}
