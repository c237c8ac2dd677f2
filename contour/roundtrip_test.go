package contour

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/maskio"
	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/preproc"
)

// A synthetic case: a series geometry and a probability defined in patient space, so the same
// lesion can be laid on any grid.
type rtCase struct {
	name string
	spec synthmr.Spec
	// prob gives the probability at a patient point, relative to the series' centre.
	prob  func(p preproc.Vec3) float64
	holes HoleMode
	// raw feeds the thresholded mask straight to the writer, without post-processing (which
	// would fill a ring's hole).
	raw bool
}

// ball is a soft sphere: probability 0.5 on its surface, rising over about a millimetre inside.
func ball(cx, cy, cz, radius float64) func(p preproc.Vec3) float64 {
	return func(p preproc.Vec3) float64 {
		d := math.Sqrt((p[0]-cx)*(p[0]-cx) + (p[1]-cy)*(p[1]-cy) + (p[2]-cz)*(p[2]-cz))
		return 1 / (1 + math.Exp((d-radius)/0.7))
	}
}

func rotIOP(ax, az float64) [6]float64 {
	// Row and column directions of an axial slice tilted by ax about x, then turned by az
	// about z (degrees).
	a, b := ax*math.Pi/180, az*math.Pi/180
	row := preproc.Vec3{math.Cos(b), math.Sin(b), 0}
	col := preproc.Vec3{-math.Sin(b) * math.Cos(a), math.Cos(b) * math.Cos(a), math.Sin(a)}
	return [6]float64{row[0], row[1], row[2], col[0], col[1], col[2]}
}

func roundTripCases() []rtCase {
	ring := func(p preproc.Vec3) float64 {
		r := math.Hypot(p[0], p[1])
		in := math.Min(math.Min(r-5, 13-r), 4.5-math.Abs(p[2]))
		return 1 / (1 + math.Exp(-in/0.7))
	}
	axial := [6]float64{1, 0, 0, 0, 1, 0}
	base := synthmr.Spec{Rows: 64, Cols: 64, Slices: 12, Spacing: [2]float64{1, 1}, IOP: axial, Origin: [3]float64{-32, -32, -15}, Step: 3}
	with := func(f func(s *synthmr.Spec)) synthmr.Spec { s := base; f(&s); return s }
	return []rtCase{
		{name: "oblique", spec: with(func(s *synthmr.Spec) { s.IOP = rotIOP(18, 12) }), prob: ball(0, 0, 0, 11)},
		{name: "anisotropic", spec: with(func(s *synthmr.Spec) { s.Spacing = [2]float64{0.7, 1.3}; s.Cols = 48 }),
			prob: func(p preproc.Vec3) float64 { // an ellipsoid, longer along y
				d := math.Sqrt(p[0]*p[0]/(9*9) + p[1]*p[1]/(15*15) + p[2]*p[2]/(10*10))
				return 1 / (1 + math.Exp((d-1)/0.08))
			}},
		{name: "ring with a hole", spec: base, raw: true, prob: ring},
		{name: "ring as keyhole", spec: base, raw: true, holes: HolesKeyhole, prob: ring},
		{name: "ring as XOR", spec: with(func(s *synthmr.Spec) { s.IOP = rotIOP(-10, 25) }), raw: true, holes: HolesXOR, prob: ring},
		{name: "filled ring", spec: base, prob: ring},
		{name: "two components", spec: base, prob: func(p preproc.Vec3) float64 {
			return math.Max(ball(0, 0, 0, 7)(p), ball(24, 5, 3, 5)(p))
		}},
		{name: "a few pixels", spec: base, prob: ball(0.3, -0.2, 0, 1.6)},
		{name: "touching the edge", spec: base, prob: ball(-30, 4, 0, 9)},
	}
}

// TestRoundTripThroughPlastimatch writes RT Structure Sets for synthetic lesions and has
// plastimatch rasterize them back onto the series: the acceptance numbers on every
// object (Dice and volume on objects of more than 50 voxels, mean boundary distance on all).
// Our own rasterizer must agree with plastimatch too, and dciodvfy must find no error.
func TestRoundTripThroughPlastimatch(t *testing.T) {
	plastimatch := testenv.Require(t, "plastimatch")
	dciodvfy := testenv.Require(t, "dciodvfy")
	for _, tc := range roundTripCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			series := filepath.Join(dir, "series")
			os.Mkdir(series, 0o755)
			paths, err := synthmr.Write(series, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
			if err != nil {
				t.Fatal(err)
			}
			centre := v.Patient(v.Slices()/2, float64(v.Rows-1)/2, float64(v.Cols-1)/2)
			p := make([]float32, len(v.Pixels))
			plane := v.Rows * v.Cols
			for i := range p {
				k, r, c := i/plane, (i%plane)/v.Cols, i%v.Cols
				q := v.Patient(k, float64(r), float64(c))
				p[i] = float32(tc.prob(preproc.Vec3{q[0] - centre[0], q[1] - centre[1], q[2] - centre[2]}))
			}
			seg, err := Postprocess(&v.Geometry, Float32s(p), centre[0], Params{Threshold: 0.5, MidlineMM: 15})
			if err != nil {
				t.Fatal(err)
			}
			if tc.raw {
				seg.Review = newMask(v.Rows, v.Cols, v.Slices())
				for i, x := range p {
					seg.GTV.In[i] = x >= 0.5
				}
			}
			text, err := ReadSourceText(paths[0])
			if err != nil {
				t.Fatal(err)
			}
			ss := &StructureSet{Source: v, Text: text, Revision: 1, Created: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Holes: tc.holes,
				UIDs: DeriveUIDs(UIDInputs{SourceSOPInstanceUIDs: v.SOPInstanceUIDs, BundleSHA256: "test", FirmwareVersion: "test"}),
				Prov: Provenance{DeviceID: "test-box", FirmwareVersion: "0.0.0-test", ModelName: "synthetic", ModelVersion: "0.0.0",
					BundleSHA256: strings.Repeat("0", 64), TFLiteVersion: "none", Engine: "cpu"}}
			masks := map[string]*Mask{}
			for i, m := range []*Mask{seg.GTV, seg.Review} {
				if m.Count() == 0 {
					continue
				}
				sl, err := Trace(v, Float32s(p), m, 0.5, TraceOptions{Holes: tc.holes})
				if err != nil {
					t.Fatal(err)
				}
				name := []string{"GTV_SYN_AI", "GTV_SYN_AI_REV"}[i]
				ss.ROIs = append(ss.ROIs, ROIData{Number: i + 1, Name: name, InterpretedType: "GTV", Color: [3]uint8{255, 0, 0}, Slices: sl})
				masks[name] = m
				own, err := Rasterize(&v.Geometry, sl)
				if err != nil {
					t.Fatal(err)
				}
				compareMasks(t, "own rasterizer "+name, m, own)
			}
			if tc.name == "two components" && (seg.Review.Count() == 0 || seg.GTV.Count() == 0) {
				t.Fatalf("two components: GTV %d voxels, review %d voxels; want the lateral one set aside", seg.GTV.Count(), seg.Review.Count())
			}
			holes, points := 0, 0
			for _, sc := range ss.ROIs[0].Slices {
				for _, poly := range sc.Polygons {
					if poly.Hole {
						holes++
					}
					points += len(poly.Points)
				}
			}
			t.Logf("%d contours' points after simplification: %d; holes written as hole contours: %d", len(ss.ROIs[0].Slices), points, holes)
			switch {
			case tc.name == "filled ring" && holes != 0:
				t.Fatalf("filled ring: %d hole contours after hole filling (the GTV of DMG includes its core)", holes)
			case tc.raw && tc.holes != HolesKeyhole && holes == 0:
				t.Fatalf("%s: no hole contour written", tc.name)
			case tc.holes == HolesKeyhole && holes != 0:
				t.Fatalf("%s: %d hole contours remain after keyholing", tc.name, holes)
			}
			out := filepath.Join(dir, "rtstruct.dcm")
			var b bytes.Buffer
			if err := WriteRTStruct(&b, ss); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(out, b.Bytes(), 0o644)
			vr, _ := exec.Command(dciodvfy, out).CombinedOutput()
			for _, line := range strings.Split(string(vr), "\n") {
				// CLOSEDPLANAR_XOR entered PS3.3 after the dicom3tools release Debian 12 ships;
				// its dictionary does not know the term yet. Any other error fails.
				if strings.Contains(line, "Error") && !(tc.holes == HolesXOR && strings.Contains(line, "<CLOSEDPLANAR_XOR>")) {
					t.Fatalf("dciodvfy:\n%s", vr)
				}
			}
			if tc.holes == HolesXOR {
				// plastimatch 1.9.4 skips contours of a type it does not know; the XOR mode is
				// checked by our rasterizer above only.
				return
			}
			prefix := filepath.Join(dir, "pm")
			cmd := exec.Command(plastimatch, "convert", "--input", out, "--referenced-ct", series,
				"--output-prefix", prefix, "--prefix-format", "nrrd")
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("plastimatch: %v\n%s", err, msg)
			}
			for name, m := range masks {
				pm, err := readNRRDMask(filepath.Join(prefix, name+".nrrd"), m.Cols, m.Rows, m.Slices)
				if err != nil {
					t.Fatal(err)
				}
				want := m
				if tc.holes == HolesSeparate || tc.holes == "" {
					// plastimatch 1.9.4 ORs the contours of a slice: a hole written as its own
					// CLOSED_PLANAR contour comes back filled (planning systems such as Eclipse
					// read nesting as a hole; our rasterizer does, even-odd).
					want = &Mask{Rows: m.Rows, Cols: m.Cols, Slices: m.Slices, In: append([]bool(nil), m.In...)}
					want.fillHoles()
				}
				compareMasks(t, "plastimatch "+name, want, pm)
			}
		})
	}
}

// compareMasks applies the acceptance numbers per 3D object of want.
func compareMasks(t *testing.T, what string, want, got *Mask) {
	t.Helper()
	a, b := want.Count(), got.Count()
	inter := 0
	for i := range want.In {
		if want.In[i] && got.In[i] {
			inter++
		}
	}
	dice := 2 * float64(inter) / float64(a+b)
	mbd := meanBoundaryDistance(want, got)
	t.Logf("%s: %d voxels, got %d, Dice %.4f, volume %+.2f%%, mean boundary distance %.3f px", what, a, b, dice,
		100*float64(b-a)/float64(a), mbd)
	if a > 50 {
		if dice < 0.98 {
			t.Errorf("%s: Dice %.4f < 0.98", what, dice)
		}
		if math.Abs(float64(b-a)) > 0.02*float64(a) {
			t.Errorf("%s: volume %d voxels against %d (more than 2%%)", what, b, a)
		}
	}
	if mbd > 0.5 {
		t.Errorf("%s: mean boundary distance %.3f pixel > 0.5", what, mbd)
	}
}

// meanBoundaryDistance is the symmetric mean in-plane distance, in pixels, from the boundary
// pixels of each mask to the nearest boundary pixel of the other on the same slice.
func meanBoundaryDistance(a, b *Mask) float64 {
	var sum float64
	n := 0
	for k := range a.Slices {
		ba, bb := boundary(a, k), boundary(b, k)
		for _, pair := range [][2][][2]int{{ba, bb}, {bb, ba}} {
			for _, p := range pair[0] {
				best := math.Inf(1)
				for _, q := range pair[1] {
					best = math.Min(best, math.Hypot(float64(p[0]-q[0]), float64(p[1]-q[1])))
				}
				if math.IsInf(best, 1) {
					best = float64(a.Rows) // nothing on the other side: a missed object
				}
				sum += best
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func boundary(m *Mask, k int) [][2]int {
	var out [][2]int
	at := func(r, c int) bool {
		return r >= 0 && c >= 0 && r < m.Rows && c < m.Cols && m.In[(k*m.Rows+r)*m.Cols+c]
	}
	for r := range m.Rows {
		for c := range m.Cols {
			if at(r, c) && (!at(r-1, c) || !at(r+1, c) || !at(r, c-1) || !at(r, c+1)) {
				out = append(out, [2]int{r, c})
			}
		}
	}
	return out
}

// readNRRDMask reads plastimatch's label volume of a series grid of x columns, y rows, z slices.
func readNRRDMask(path string, x, y, z int) (*Mask, error) {
	v, err := maskio.ReadNRRD(path)
	if err != nil {
		return nil, err
	}
	if v.X != x || v.Y != y || v.Z != z {
		return nil, fmt.Errorf("%s: %dx%dx%d, want %dx%dx%d", path, v.X, v.Y, v.Z, x, y, z)
	}
	m := newMask(y, x, z)
	for i, b := range v.Data {
		m.In[i] = b != 0
	}
	return m, nil
}

// TestEmptyStructureSetIsValid: a destination that asks for a structure set when no lesion is
// found gets one ROI without contours, which dciodvfy accepts.
func TestEmptyStructureSetIsValid(t *testing.T) {
	dciodvfy := testenv.Require(t, "dciodvfy")
	dcmdump := testenv.Require(t, "dcmdump")
	dir := t.TempDir()
	paths, err := synthmr.Write(dir, synthmr.Spec{Rows: 16, Cols: 16, Slices: 3, Spacing: [2]float64{1, 1}, IOP: [6]float64{1, 0, 0, 0, 1, 0}, Step: 3})
	if err != nil {
		t.Fatal(err)
	}
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ss := &StructureSet{Source: v, Revision: 1, Created: time.Unix(0, 0).UTC(),
		UIDs: DeriveUIDs(UIDInputs{SourceSOPInstanceUIDs: v.SOPInstanceUIDs}),
		ROIs: []ROIData{{Number: 1, Name: "GTV_T2_AI", InterpretedType: "GTV", Color: [3]uint8{255, 64, 64}}},
		Prov: Provenance{DeviceID: "t", ModelName: "m", ModelVersion: "0", FirmwareVersion: "0.1.0-dev+g0123456789ab.dirty",
			FirmwareCommit: strings.Repeat("c", 40), BundleSHA256: strings.Repeat("b", 64), TFLiteVersion: "2.14.1", Engine: "cpu"}}
	var b bytes.Buffer
	if err := WriteRTStruct(&b, ss); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "empty.dcm")
	os.WriteFile(p, b.Bytes(), 0o644)
	out, _ := exec.Command(dciodvfy, p).CombinedOutput()
	if strings.Contains(string(out), "Error") {
		t.Fatalf("dciodvfy:\n%s", out)
	}
	// SoftwareVersions (LO, 64 characters a value) keeps the whole commit and bundle digest.
	sw, err := exec.Command(dcmdump, "-q", "+L", "+P", "0018,1020", p).CombinedOutput()
	if err != nil || !strings.Contains(string(sw), `\commit `+strings.Repeat("c", 40)+`\`) ||
		!strings.Contains(string(sw), `\`+strings.Repeat("b", 64)+`\`) || !strings.Contains(string(sw), "[midline 0.1.0-dev+g0123456789ab.dirty\\") {
		t.Fatalf("SoftwareVersions: %v\n%s", err, sw)
	}
}

// TestMultiFrameReferencesAndDumpers: contours on an Enhanced MR (multi-frame) source name their
// frame (ReferencedFrameNumber) in every image reference; dcmdump and drtdump read the file and
// dciodvfy finds no error.
func TestMultiFrameReferencesAndDumpers(t *testing.T) {
	dcmdump := testenv.Require(t, "dcmdump")
	drtdump := testenv.Require(t, "drtdump")
	dciodvfy := testenv.Require(t, "dciodvfy")
	dir := t.TempDir()
	paths, err := synthmr.Write(dir, synthmr.Spec{Rows: 32, Cols: 32, Slices: 4, Spacing: [2]float64{1, 1}, IOP: [6]float64{1, 0, 0, 0, 1, 0}, Step: 3})
	if err != nil {
		t.Fatal(err)
	}
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Present the same geometry as one Enhanced MR instance of four frames.
	v.Header.SOPClassUID = enhancedMRImageStorage
	for k := range v.SOPInstanceUIDs {
		v.SOPInstanceUIDs[k] = "2.25.4242"
	}
	v.Frames = []int{1, 2, 3, 4}
	p := make([]float32, len(v.Pixels))
	centre := v.Patient(1, 15.5, 15.5)
	for i := range p {
		k, r, c := i/(32*32), (i%(32*32))/32, i%32
		q := v.Patient(k, float64(r), float64(c))
		p[i] = float32(ball(centre[0], centre[1], centre[2], 5)(q))
	}
	seg, err := Postprocess(&v.Geometry, Float32s(p), centre[0], Params{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := Trace(v, Float32s(p), seg.GTV, 0.5, TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ss := &StructureSet{Source: v, Revision: 1, Created: time.Unix(0, 0).UTC(), UIDs: DeriveUIDs(UIDInputs{SourceSOPInstanceUIDs: v.SOPInstanceUIDs}),
		ROIs: []ROIData{{Number: 1, Name: "GTV_T1C_AI", InterpretedType: "GTV", Color: [3]uint8{1, 2, 3}, Slices: sl}},
		Prov: Provenance{DeviceID: "t", ModelName: "m", ModelVersion: "0"}}
	var b bytes.Buffer
	if err := WriteRTStruct(&b, ss); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "rs.dcm")
	os.WriteFile(f, b.Bytes(), 0o644)
	dump, err := exec.Command(dcmdump, f).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, dump)
	}
	// Every slice in the referenced frame of reference, and every contour's image, by frame.
	if n := strings.Count(string(dump), "ReferencedFrameNumber"); n != 4+len(sl) {
		t.Fatalf("%d ReferencedFrameNumber elements, want %d", n, 4+len(sl))
	}
	for _, k := range []string{"[1]", "[2]", "[3]", "[4]"} {
		if !strings.Contains(string(dump), "IS "+k) {
			t.Fatalf("no frame %s referenced:\n%s", k, dump)
		}
	}
	if out, err := exec.Command(drtdump, f).CombinedOutput(); err != nil || !strings.Contains(string(out), "RT Structure Set") {
		t.Fatalf("drtdump: %v\n%s", err, out)
	}
	if out, _ := exec.Command(dciodvfy, f).CombinedOutput(); strings.Contains(string(out), "Error") {
		t.Fatalf("dciodvfy:\n%s", out)
	}
}
