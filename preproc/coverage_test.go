package preproc

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// headBox is a volume of rows x cols x n voxels on geometry g holding a ball of 100 (the head)
// in air of 0, centred at voxel (k, r, c) with radius rad voxels.
func headBox(g Geometry, n int, k, r, c, rad float64) *Volume {
	for i := range n {
		g.Positions = append(g.Positions, g.Normal.scale(float64(i)*g.SliceSpacing))
	}
	v := &Volume{Geometry: g, Pixels: make([]float32, g.Rows*g.Cols*n)}
	for i := range n {
		for y := range g.Rows {
			for x := range g.Cols {
				if sq(float64(i)-k)+sq(float64(y)-r)+sq(float64(x)-c) <= rad*rad {
					v.Pixels[(i*g.Rows+y)*g.Cols+x] = 100
				}
			}
		}
	}
	return v
}

func sq(x float64) float64 { return x * x }

func sides(cuts []FieldOfViewCut) []string {
	var s []string
	for _, c := range cuts {
		s = append(s, c.Side)
	}
	slices.Sort(s)
	return s
}

// TestFieldOfViewCuts: a head inside the box is not cut; one that crosses an edge is, on the
// patient's side that edge looks to; the ends of an axial stack never count, and a sagittal
// slab's first and last slices do.
func TestFieldOfViewCuts(t *testing.T) {
	axial := Geometry{Rows: 40, Cols: 40, RowCosine: Vec3{1, 0, 0}, ColumnCosine: Vec3{0, 1, 0}, Normal: Vec3{0, 0, 1},
		PixelSpacing: [2]float64{1, 1}, SliceSpacing: 1}
	sagittal := Geometry{Rows: 40, Cols: 40, RowCosine: Vec3{0, 1, 0}, ColumnCosine: Vec3{0, 0, -1}, Normal: Vec3{-1, 0, 0},
		PixelSpacing: [2]float64{1, 1}, SliceSpacing: 1}
	for _, tc := range []struct {
		name string
		v    *Volume
		want []string
	}{
		{"whole head", headBox(axial, 20, 10, 20, 20, 15), nil},
		{"axial stack ending inside the head", headBox(axial, 6, 3, 20, 20, 15), nil},
		{"cut on column 0 (the patient's right)", headBox(axial, 20, 10, 20, 5, 15), []string{"right"}},
		{"cut on the last row (posterior)", headBox(axial, 20, 10, 35, 20, 15), []string{"posterior"}},
		{"small field of view", headBox(axial, 20, 10, 20, 20, 30), []string{"anterior", "left", "posterior", "right"}},
		{"scalp clipped", headBox(axial, 20, 10, 20, 26, 15), nil},
		{"sagittal slab through the head", headBox(sagittal, 8, 4, 20, 20, 19), []string{"left", "right"}},
		{"sagittal whole head", headBox(sagittal, 40, 20, 20, 20, 15), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cuts := FieldOfViewCuts(tc.v, Normalization{High: 100})
			if got := sides(cuts); !slices.Equal(got, tc.want) {
				t.Errorf("cut sides %v (%+v), want %v", got, cuts, tc.want)
			}
			flag := FlagFieldOfViewCut(cuts)
			if (flag != "") != (len(tc.want) > 0) || (flag != "" && !HasFieldOfViewCut([]string{flag})) {
				t.Errorf("flag %q for cuts %+v", flag, cuts)
			}
			for i := 1; i < len(cuts); i++ {
				if cuts[i].Fraction > cuts[i-1].Fraction {
					t.Errorf("cuts not most cut first: %+v", cuts)
				}
			}
		})
	}
}

// TestFieldOfViewCutsPhantoms: the orientation phantoms' near-axial series clip the scalp at most
// (the model works on them as on whole heads); the coronal and sagittal 60 mm slabs cut the head
// front and back, and left and right (and their 144 mm in-plane field of view one more side), the
// whole-head coronal volume does not; a 96 mm axial field of view cuts the head on every side.
func TestFieldOfViewCutsPhantoms(t *testing.T) {
	for name, want := range map[string][]string{
		"hfs": nil, "hfs_r": nil, "ffs": nil, "hfp": nil, "tilted": nil,
		"coronal": {"anterior", "posterior", "right"}, "sagittal": {"left", "posterior", "right"},
		"coronal_whole": nil, "../fov96": {"anterior", "left", "posterior", "right"}, "../seed4": nil,
	} {
		t.Run(name, func(t *testing.T) {
			paths, _ := filepath.Glob(filepath.Join("..", "testdata", "phantom", "orientation", name, "T2", "*.dcm"))
			if len(paths) == 0 {
				t.Fatalf("no series in %s", name)
			}
			v, err := LoadSeries(context.Background(), paths, Options{})
			if err != nil {
				t.Fatal(err)
			}
			nm, err := FitNormalization(v.Pixels, 0.5, 99.5)
			if err != nil {
				t.Fatal(err)
			}
			cuts := FieldOfViewCuts(v, nm)
			t.Logf("%s: %+v", name, cuts)
			if got := sides(cuts); !slices.Equal(got, want) {
				t.Errorf("cut sides %v (%+v), want %v", got, cuts, want)
			}
		})
	}
}
