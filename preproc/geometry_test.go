package preproc

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
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
		if m.dim != [3]int{v.Cols, v.Rows, v.Slices()} {
			t.Fatalf("%s: mask %v for %s", seq, m.dim, v.Geometry.String())
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
					lps := Vec3{-ras[0], -ras[1], ras[2]}
					got := v.Patient(k, float64(j), float64(i))
					worst = max(worst, got.sub(lps).norm())
					if m.data[(k*m.dim[1]+j)*m.dim[0]+i] != 0 {
						sum, n = sum.add(got), n+1
					}
				}
			}
		}
		// The affine is stored in float32: ~1e-5 of 100 mm.
		if worst > 5e-3 {
			t.Errorf("%s: a voxel lies %.4f mm from where the mask's affine puts it", seq, worst)
		}
		c := sum.scale(1 / float64(n))
		t.Logf("%s: %d mask voxels, centroid %.2f mm (LPS), worst voxel offset %.5f mm", seq, n, c, worst)
		if n == 0 || bytes.Count(m.data, []byte{0}) == len(m.data) {
			t.Errorf("%s: empty mask", seq)
		}
		// The drawn tumour's centre, sampled by 5 mm slices: its mask's centroid is near.
		if d := c.sub(st.Tumour.CentreLPS).norm(); d > 1.5 {
			t.Errorf("%s: mask centroid %.2f mm from the drawn tumour centre", seq, d)
		}
	}
}
