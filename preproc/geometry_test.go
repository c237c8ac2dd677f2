package preproc

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nifti is the part of a NIfTI-1 uint8 mask the geometry test needs.
type nifti struct {
	dim  [3]int
	srow [3][4]float64 // voxel (i, j, k) to RAS mm
	data []byte
}

func readNIfTI(t *testing.T, path string) nifti {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if len(b) < 352 || le.Uint32(b) != 348 {
		t.Fatalf("%s: not a little-endian NIfTI-1 file", path)
	}
	var n nifti
	for a := range 3 {
		n.dim[a] = int(le.Uint16(b[42+2*a:]))
	}
	if dt := le.Uint16(b[70:]); dt != 2 || le.Uint16(b[254:]) == 0 {
		t.Fatalf("%s: datatype %d or no sform", path, dt)
	}
	for r := range 3 {
		for c := range 4 {
			n.srow[r][c] = float64(math.Float32frombits(le.Uint32(b[280+16*r+4*c:])))
		}
	}
	off := max(352, int(math.Float32frombits(le.Uint32(b[108:]))))
	n.data = b[off:]
	if len(n.data) < n.dim[0]*n.dim[1]*n.dim[2] {
		t.Fatalf("%s: %d data bytes", path, len(n.data))
	}
	return n
}

// The phantom's ground-truth masks are on each series' own grid with their own affine (written
// by the Python generator from its own geometry): every mask voxel must lie, by the loaded
// Volume's index-to-patient mapping, where the mask's affine puts it.
func TestGeometryMatchesPhantomMasks(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(phantomDir, "study.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Tumour struct {
			CentreLPS Vec3 `json:"centre_lps"`
		} `json:"tumour"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []string{"T2", "FLAIR", "T1C"} {
		v, err := LoadSeries(context.Background(), phantomPaths(t, seq), Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := readNIfTI(t, filepath.Join(phantomDir, seq+".gtv.nii.gz"))
		c, n, worst := checkMask(t, v, m)
		// The affine is stored in float32: ~1e-5 of 100 mm.
		if worst > 5e-3 {
			t.Errorf("%s: a voxel lies %.4f mm from where the mask's affine puts it", seq, worst)
		}
		t.Logf("%s: %d mask voxels, centroid %.2f mm (LPS), worst voxel offset %.5f mm", seq, n, c, worst)
		// The drawn tumour's centre, sampled by 5 mm slices: its mask's centroid is near.
		if d := c.sub(st.Tumour.CentreLPS).norm(); d > 1.5 {
			t.Errorf("%s: mask centroid %.2f mm from the drawn tumour centre", seq, d)
		}
	}
}

// checkMask compares every voxel's position by v's geometry with the mask's affine and returns
// the mask's centroid (LPS), its voxel count and the worst offset in mm.
func checkMask(t *testing.T, v *Volume, m nifti) (Vec3, int, float64) {
	t.Helper()
	if m.dim != [3]int{v.Cols, v.Rows, v.Slices()} {
		t.Fatalf("mask %v for %s", m.dim, v.Geometry.String())
	}
	var worst float64
	var sum Vec3
	n := 0
	for k := range m.dim[2] {
		for j := range m.dim[1] {
			for i := range m.dim[0] {
				idx := [4]float64{float64(i), float64(j), float64(k), 1}
				var ras Vec3
				for r := range 3 {
					for c := range 4 {
						ras[r] += m.srow[r][c] * idx[c]
					}
				}
				got := v.Patient(k, float64(j), float64(i))
				worst = max(worst, got.sub(Vec3{-ras[0], -ras[1], ras[2]}).norm())
				if m.data[(k*m.dim[1]+j)*m.dim[0]+i] != 0 {
					sum, n = sum.add(got), n+1
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("empty mask")
	}
	return sum.scale(1 / float64(n)), n, worst
}

// maskVolume is the mask as a float volume on v's grid (indexed like v.Pixels).
func maskVolume(v *Volume, m nifti) *Volume {
	out := &Volume{Geometry: v.Geometry, Pixels: make([]float32, len(v.Pixels))}
	for k := range v.Slices() {
		for r := range v.Rows {
			for c := range v.Cols {
				if m.data[(k*m.dim[1]+r)*m.dim[0]+c] != 0 {
					out.Slice(k)[r*v.Cols+c] = 1
				}
			}
		}
	}
	return out
}

func weightedCentroid(v *Volume) Vec3 {
	var sum Vec3
	var w float64
	for k := range v.Slices() {
		for r := range v.Rows {
			for c := range v.Cols {
				x := float64(v.Slice(k)[r*v.Cols+c])
				if x != 0 {
					sum, w = sum.add(v.Patient(k, float64(r), float64(c)).scale(x)), w+x
				}
			}
		}
	}
	return sum.scale(1 / w)
}

// Phantoms in other patient positions and planes, made by the Python generator (about 20 s
// each, so only with MIDLINE_PHANTOM_TESTS=1): the loaded geometry matches the masks' affines,
// the mask's centroid is the drawn tumour's, and Orient (axial) or Reformat (other planes)
// keeps the centroid where it is in patient space.
func TestPhantomPositionsAndPlanes(t *testing.T) {
	if os.Getenv("MIDLINE_PHANTOM_TESTS") != "1" {
		t.Skip("set MIDLINE_PHANTOM_TESTS=1 to generate phantoms in other positions and planes (slow)")
	}
	py, _ := filepath.Abs(filepath.Join("..", "scripts", "model", ".venv", "bin", "python"))
	if _, err := os.Stat(py); err != nil {
		t.Skipf("no model toolchain venv (%v): make venv", err)
	}
	for _, tc := range [][]string{{"--position", "FFS"}, {"--position", "HFP"}, {"--position", "FFP"}, {"--plane", "coronal"}, {"--plane", "sagittal"}} {
		t.Run(strings.Join(tc, " "), func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"-m", "midline_model.phantom", "--seed", "4", "--small", "--out", out}, tc...)
			cmd := exec.Command(py, args...)
			cmd.Dir = filepath.Join("..", "scripts", "model")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("phantom: %v\n%s", err, b)
			}
			var st struct {
				Tumour struct {
					CentreLPS Vec3 `json:"centre_lps"`
				} `json:"tumour"`
			}
			b, _ := os.ReadFile(filepath.Join(out, "study.json"))
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			for _, seq := range []string{"T2", "FLAIR", "T1C"} {
				paths, _ := filepath.Glob(filepath.Join(out, seq, "*.dcm"))
				v, err := LoadSeries(context.Background(), paths, Options{})
				if err != nil {
					t.Fatalf("%s: %v", seq, err)
				}
				m := readNIfTI(t, filepath.Join(out, seq+".gtv.nii.gz"))
				c, n, worst := checkMask(t, v, m)
				if worst > 5e-3 || c.sub(st.Tumour.CentreLPS).norm() > 2.5 {
					t.Errorf("%s: worst voxel offset %.4f mm, centroid %.2f vs tumour %.2f", seq, worst, c, st.Tumour.CentreLPS)
				}
				mv := maskVolume(v, m)
				var moved Vec3
				if o, err := Orient(v.Geometry, DefaultMaxTiltDeg); err == nil {
					moved = weightedCentroid(o.CanonicalVolume(mv))
					if o.Canonical.RowCosine[0] < 0.9 || o.Canonical.ColumnCosine[1] < 0.9 {
						t.Errorf("%s: canonical cosines %v %v", seq, o.Canonical.RowCosine, o.Canonical.ColumnCosine)
					}
				} else {
					rf, err := NewReformat(v.Geometry, 1, 1, DefaultLimits())
					if err != nil {
						t.Fatal(err)
					}
					moved = weightedCentroid(rf.ToAxial(mv, 0))
				}
				if d := moved.sub(c).norm(); d > 1 {
					t.Errorf("%s: centroid moved %.3f mm by orientation", seq, d)
				}
				t.Logf("%s: %d voxels, centroid %.2f, after orientation %.2f, worst offset %.5f mm", seq, n, c, moved, worst)
			}
		})
	}
}
