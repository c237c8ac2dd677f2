package preproc

import (
	"errors"
	"math"
	"testing"
)

// linear is a field trilinear interpolation reproduces exactly.
func linear(p Vec3) float64 { return 2*p[0] - 3*p[1] + 0.5*p[2] + 7 }

func sampled(g Geometry, f func(Vec3) float64) *Volume {
	v := &Volume{Geometry: g, Pixels: make([]float32, g.Rows*g.Cols*g.Slices())}
	for k := range g.Slices() {
		for r := range g.Rows {
			for c := range g.Cols {
				v.Slice(k)[r*g.Cols+c] = float32(f(g.Patient(k, float64(r), float64(c))))
			}
		}
	}
	return v
}

var nonAxial = []struct {
	name string
	iop  [6]float64
}{
	{"sagittal", [6]float64{0, 1, 0, 0, 0, -1}},
	{"coronal", [6]float64{1, 0, 0, 0, 0, -1}},
	{"oblique sagittal", tilted([6]float64{0, 1, 0, 0, 0, -1}, 15)},
}

func TestReformatLinearField(t *testing.T) {
	for _, tc := range nonAxial {
		t.Run(tc.name, func(t *testing.T) {
			g := geom(tc.iop, 24, 20, 16, [2]float64{1, 1.2}, 1.5)
			v := sampled(g, linear)
			rf, err := NewReformat(g, 1, 1, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			ax := rf.ToAxial(v, -1000)
			if ax.RowCosine != (Vec3{1, 0, 0}) || ax.ColumnCosine != (Vec3{0, 1, 0}) {
				t.Fatalf("axial cosines %v %v", ax.RowCosine, ax.ColumnCosine)
			}
			inside := 0
			for k := range ax.Slices() {
				for i := range ax.Rows {
					for j := range ax.Cols {
						got := ax.Slice(k)[i*ax.Cols+j]
						if got == -1000 {
							continue
						}
						inside++
						if want := linear(ax.Patient(k, float64(i), float64(j))); math.Abs(float64(got)-want) > 1e-3 {
							t.Fatalf("axial (%d,%d,%d) = %v, want %v", k, i, j, got, want)
						}
					}
				}
			}
			if inside < len(v.Pixels)/2 {
				t.Fatalf("only %d axial voxels inside the native volume", inside)
			}
			// The way back: the axial field is defined everywhere the native grid is, so
			// replace the fill by the field and map back.
			for k := range ax.Slices() {
				for i := range ax.Rows {
					for j := range ax.Cols {
						ax.Slice(k)[i*ax.Cols+j] = float32(linear(ax.Patient(k, float64(i), float64(j))))
					}
				}
			}
			back := make([]float32, len(v.Pixels))
			rf.ToNative(back, ax.Pixels)
			for i, want := range v.Pixels {
				if math.Abs(float64(back[i]-want)) > 1e-3 {
					t.Fatalf("native voxel %d back as %v, want %v", i, back[i], want)
				}
			}
		})
	}
}

// A lesion on the patient's left stays there: axial columns run to the left.
func TestReformatLesionSide(t *testing.T) {
	for _, tc := range nonAxial {
		g := geom(tc.iop, 30, 30, 20, [2]float64{1, 1}, 1)
		lesion := g.Patient(10, 15, 15).add(Vec3{6, -3, 2}) // off-centre to the patient's left
		v := sampled(g, func(p Vec3) float64 {
			if p.sub(lesion).norm() < 5 {
				return 1
			}
			return 0
		})
		rf, err := NewReformat(g, 1, 1, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		ax := rf.ToAxial(v, 0)
		var sum float64
		var c Vec3
		for k := range ax.Slices() {
			for i := range ax.Rows {
				for j := range ax.Cols {
					w := float64(ax.Slice(k)[i*ax.Cols+j])
					sum += w
					c = c.add(ax.Patient(k, float64(i), float64(j)).scale(w))
				}
			}
		}
		if c = c.scale(1 / sum); !c.near(lesion, 0.5) {
			t.Errorf("%s: lesion centroid %v on the axial grid, want %v", tc.name, c, lesion)
		}
	}
}

func TestReformatRefusesHugeGrid(t *testing.T) {
	g := geom(nonAxial[0].iop, 512, 512, 176, [2]float64{1, 1}, 1)
	_, err := NewReformat(g, 0.1, 0.1, DefaultLimits())
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}
