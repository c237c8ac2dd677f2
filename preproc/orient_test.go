package preproc

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// geom builds a stack of n slices of rows x cols with the given orientation, centred near the
// origin, slices step mm apart along the normal, listed in sorted order.
func geom(iop [6]float64, rows, cols, n int, spacing [2]float64, step float64) Geometry {
	g := Geometry{Rows: rows, Cols: cols, PixelSpacing: spacing, SliceSpacing: step,
		RowCosine: Vec3{iop[0], iop[1], iop[2]}.unit(), ColumnCosine: Vec3{iop[3], iop[4], iop[5]}.unit()}
	g.Normal = g.RowCosine.cross(g.ColumnCosine).unit()
	// Centred near the isocentre, so that both sides of the patient are in the image.
	o := Vec3{0.3, -2, 12}.sub(g.RowCosine.scale(float64(cols-1) / 2 * spacing[1])).sub(g.ColumnCosine.scale(float64(rows-1) / 2 * spacing[0]))
	for k := range n {
		g.Positions = append(g.Positions, o.add(g.Normal.scale(step*float64(k))))
	}
	return g
}

func rotX(deg float64, v Vec3) Vec3 {
	a := deg * math.Pi / 180
	return Vec3{v[0], v[1]*math.Cos(a) - v[2]*math.Sin(a), v[1]*math.Sin(a) + v[2]*math.Cos(a)}
}

func tilted(iop [6]float64, deg float64) [6]float64 {
	r, c := rotX(deg, Vec3{iop[0], iop[1], iop[2]}), rotX(deg, Vec3{iop[3], iop[4], iop[5]})
	return [6]float64{r[0], r[1], r[2], c[0], c[1], c[2]}
}

var axialCases = []struct {
	name string
	iop  [6]float64
}{
	{"head-first supine", [6]float64{1, 0, 0, 0, 1, 0}},
	{"feet-first supine", [6]float64{-1, 0, 0, 0, 1, 0}},
	{"head-first prone", [6]float64{-1, 0, 0, 0, -1, 0}},
	{"feet-first prone", [6]float64{1, 0, 0, 0, -1, 0}},
	{"transposed", [6]float64{0, 1, 0, 1, 0, 0}},
	{"transposed and flipped", [6]float64{0, -1, 0, -1, 0, 0}},
	{"tilted 20 degrees", tilted([6]float64{1, 0, 0, 0, 1, 0}, 20)},
	{"prone tilted -30 degrees", tilted([6]float64{-1, 0, 0, 0, -1, 0}, -30)},
}

func TestOrientExact(t *testing.T) {
	for _, tc := range axialCases {
		t.Run(tc.name, func(t *testing.T) {
			// Anisotropic pixels and a non-square matrix catch a row/column swap.
			g := geom(tc.iop, 7, 5, 4, [2]float64{0.8, 1.3}, 3)
			o, err := Orient(g, DefaultMaxTiltDeg)
			if err != nil {
				t.Fatal(err)
			}
			cg := o.Canonical
			if cg.RowCosine[0] < 0.8 || cg.ColumnCosine[1] < 0.8 || cg.Normal[2] < 0.8 {
				t.Fatalf("canonical cosines %v %v normal %v", cg.RowCosine, cg.ColumnCosine, cg.Normal)
			}
			for k := 1; k < len(cg.Positions); k++ {
				if cg.Positions[k].sub(cg.Positions[k-1]).dot(cg.Normal) <= 0 {
					t.Fatalf("canonical slices not sorted along the normal")
				}
			}
			// Every canonical voxel lies exactly where its native voxel lies.
			for k := range cg.Slices() {
				for i := range cg.Rows {
					for j := range cg.Cols {
						r, c := o.nativeIndex(i, j, cg.Rows, cg.Cols)
						want := g.Patient(o.NativeSlice(k), float64(r), float64(c))
						if got := cg.Patient(k, float64(i), float64(j)); !got.near(want, 1e-9) {
							t.Fatalf("canonical (%d,%d,%d) at %v, native voxel at %v", k, i, j, got, want)
						}
					}
				}
			}
			// Pixels follow, and the way back is the identity.
			src := make([]float32, g.Rows*g.Cols)
			for i := range src {
				src[i] = float32(i)
			}
			can, back := make([]float32, len(src)), make([]float32, len(src))
			o.ToCanonical(can, src)
			for i := range cg.Rows {
				for j := range cg.Cols {
					if r, c := o.nativeIndex(i, j, cg.Rows, cg.Cols); can[i*cg.Cols+j] != src[r*g.Cols+c] {
						t.Fatalf("canonical pixel (%d,%d) holds %v, native (%d,%d) is %v", i, j, can[i*cg.Cols+j], r, c, src[r*g.Cols+c])
					}
				}
			}
			o.FromCanonical(back, can)
			if !slices.Equal(back, src) {
				t.Fatal("FromCanonical(ToCanonical(x)) != x")
			}
		})
	}
}

// A lesion on the patient's left lands in the canonical image's right half (columns run to
// the left), whatever the native orientation.
func TestOrientLesionSide(t *testing.T) {
	for _, tc := range axialCases {
		g := geom(tc.iop, 40, 30, 3, [2]float64{1, 1.5}, 4)
		v := &Volume{Geometry: g, Pixels: make([]float32, 40*30*3)}
		for k := range 3 {
			for r := range 40 {
				for c := range 30 {
					if g.Patient(k, float64(r), float64(c))[0] > 0 {
						v.Slice(k)[r*30+c] = 1
					}
				}
			}
		}
		o, err := Orient(g, DefaultMaxTiltDeg)
		if err != nil {
			t.Fatal(err)
		}
		cv := o.CanonicalVolume(v)
		for k := range cv.Slices() {
			s := cv.Slice(k)
			var left, right float32
			for i := range cv.Rows {
				for j := range cv.Cols {
					if j < cv.Cols/2 {
						right += s[i*cv.Cols+j]
					} else {
						left += s[i*cv.Cols+j]
					}
				}
			}
			if left <= right {
				t.Errorf("%s slice %d: lesion in the patient's right half (%v vs %v)", tc.name, k, left, right)
			}
		}
	}
}

func TestOrientRefusesNonAxial(t *testing.T) {
	for _, iop := range [][6]float64{{1, 0, 0, 0, 0, -1}, {0, 1, 0, 0, 0, -1}, tilted([6]float64{1, 0, 0, 0, 1, 0}, 60)} {
		_, err := Orient(geom(iop, 4, 4, 3, [2]float64{1, 1}, 1), DefaultMaxTiltDeg)
		if err == nil || !strings.Contains(err.Error(), "not an axial series") {
			t.Errorf("%v: %v", iop, err)
		}
	}
}
