package contour

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/midline-rt/midline/internal/synthmr"
	"github.com/midline-rt/midline/preproc"
)

// grid builds a rows x cols field from a picture: '#' is 1, '.' is 0.
func grid(pic string) ([]float32, int, int) {
	lines := strings.Fields(pic)
	rows, cols := len(lines), len(lines[0])
	f := make([]float32, rows*cols)
	for r, l := range lines {
		for c, ch := range l {
			if ch == '#' {
				f[r*cols+c] = 1
			}
		}
	}
	return f, rows, cols
}

func TestMarchSinglePixelIsADiamondAroundItsCentre(t *testing.T) {
	f, rows, cols := grid(`
		...
		.#.
		...`)
	loops := March(f, rows, cols, 0.5)
	if len(loops) != 1 || len(loops[0].Points) != 4 || loops[0].Hole {
		t.Fatalf("loops: %+v", loops)
	}
	// Crossings half way between the centre pixel and its four neighbours: area 0.5 pixel.
	if a := SignedArea(loops[0].Points); math.Abs(a-0.5) > 1e-9 {
		t.Fatalf("area %v, want 0.5", a)
	}
}

func TestMarchSaddles(t *testing.T) {
	// Two pixels touching at a corner: the mean of the saddle cell (0.5) is inside at threshold
	// 0.5, so they join into one loop; at a higher threshold they stay apart.
	f, rows, cols := grid(`
		....
		.#..
		..#.
		....`)
	if n := len(March(f, rows, cols, 0.5)); n != 1 {
		t.Fatalf("at 0.5: %d loops, want 1 (joined through the saddle)", n)
	}
	if n := len(March(f, rows, cols, 0.6)); n != 2 {
		t.Fatalf("at 0.6: %d loops, want 2", n)
	}
}

func TestMarchHoleIsClassifiedAndWoundOppositely(t *testing.T) {
	f, rows, cols := grid(`
		.......
		.#####.
		.#...#.
		.#...#.
		.#...#.
		.#####.
		.......`)
	loops := March(f, rows, cols, 0.5)
	if len(loops) != 2 {
		t.Fatalf("%d loops", len(loops))
	}
	var outer, hole int
	for _, l := range loops {
		a := SignedArea(l.Points)
		switch {
		case l.Hole && a < 0:
			hole++
		case !l.Hole && a > 0:
			outer++
		default:
			t.Fatalf("loop hole=%v with area %v", l.Hole, a)
		}
	}
	if outer != 1 || hole != 1 {
		t.Fatalf("outer %d, hole %d", outer, hole)
	}
}

func TestMarchAtTheImageEdgeCloses(t *testing.T) {
	f, rows, cols := grid(`
		##.
		##.
		...`)
	loops := March(f, rows, cols, 0.5)
	if len(loops) != 1 {
		t.Fatalf("%d loops", len(loops))
	}
	for _, p := range loops[0].Points {
		if p.Row < -0.5 || p.Col < -0.5 {
			t.Fatalf("point %+v beyond half a pixel outside the image", p)
		}
	}
}

// TestSimplifyStaysWithinTolerance: every traced point lies within the tolerance (in mm, with
// anisotropic pixels) of the simplified polygon, which never crosses itself.
func TestSimplifyStaysWithinTolerance(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		rows, cols := 40, 40
		f := make([]float32, rows*cols)
		cr, cc, rad := 20+rng.Float64()*4, 20+rng.Float64()*4, 6+rng.Float64()*10
		for r := range rows {
			for c := range cols {
				ang := math.Atan2(float64(r)-cr, float64(c)-cc)
				d := math.Hypot(float64(r)-cr, float64(c)-cc) - rad*(1+0.2*math.Sin(3*ang+float64(trial)))
				f[r*cols+c] = float32(1 / (1 + math.Exp(d)))
			}
		}
		sp := [2]float64{0.5 + rng.Float64(), 0.5 + rng.Float64()}
		for _, l := range March(f, rows, cols, 0.5) {
			s, tol := Simplify(l.Points, sp, 0.25, 0)
			if tol > 0.25 || len(s) < 3 || len(s) > len(l.Points) || selfIntersects(s) {
				t.Fatalf("trial %d: %d -> %d points, tolerance %v, self-intersecting %v", trial, len(l.Points), len(s), tol, selfIntersects(s))
			}
			for _, p := range l.Points {
				best := math.Inf(1)
				for i := range s {
					best = math.Min(best, segDist2(p, s[i], s[(i+1)%len(s)], sp))
				}
				if math.Sqrt(best) > 0.25+1e-9 {
					t.Fatalf("trial %d: a traced point lies %.3f mm from the simplified contour", trial, math.Sqrt(best))
				}
			}
			for r := range rows {
				for c := range cols {
					q := Point{Row: float64(r), Col: float64(c)}
					if inside(l.Points, q) != inside(s, q) {
						t.Fatalf("trial %d: pixel (%d,%d) changed side", trial, r, c)
					}
				}
			}
		}
	}
}

func TestSimplifyCapsPoints(t *testing.T) {
	var pts []Point
	for i := range 2000 {
		a := 2 * math.Pi * float64(i) / 2000
		pts = append(pts, Point{Row: 300 + 250*math.Sin(a) + 0.3*math.Sin(40*a), Col: 300 + 250*math.Cos(a)})
	}
	s, tol := Simplify(pts, [2]float64{1, 1}, 0.01, 100)
	if len(s) > 100 || tol <= 0.01 {
		t.Fatalf("%d points at tolerance %v, want at most 100 by a raised tolerance", len(s), tol)
	}
}

func TestFormatDSFitsSixteenCharacters(t *testing.T) {
	for _, x := range []float64{0, -0.00001, 123.456789, -99999.123456, 1e9 + 0.5, -1e12, 1.0 / 3} {
		s := FormatDS(x)
		if len(s) > 16 || s == "" {
			t.Fatalf("%v -> %q", x, s)
		}
	}
	if FormatDS(-0.00001) != "0" || FormatDS(12.5) != "12.5" || FormatDS(-3.25004) != "-3.25" {
		t.Fatalf("formats: %q %q %q", FormatDS(-0.00001), FormatDS(12.5), FormatDS(-3.25004))
	}
}

func TestUIDsFollowTheirInputs(t *testing.T) {
	in := UIDInputs{SourceSOPInstanceUIDs: []string{"1.2.3", "1.2.4"}, BundleSHA256: "ab", FirmwareVersion: "1", Config: "x"}
	a := DeriveUIDs(in)
	in.SourceSOPInstanceUIDs = []string{"1.2.4", "1.2.3"}
	if DeriveUIDs(in) != a {
		t.Fatal("the order of the source instances changed the UIDs")
	}
	if a.SOPInstanceUID == a.SeriesInstanceUID || len(a.SOPInstanceUID) > 64 || !strings.HasPrefix(a.SOPInstanceUID, "2.25.") {
		t.Fatalf("UIDs %+v", a)
	}
	for _, change := range []func(*UIDInputs){
		func(u *UIDInputs) { u.SourceSOPInstanceUIDs = append(u.SourceSOPInstanceUIDs, "1.2.5") },
		func(u *UIDInputs) { u.BundleSHA256 = "cd" },
		func(u *UIDInputs) { u.FirmwareVersion = "2" },
		func(u *UIDInputs) { u.Config = "y" },
	} {
		u := in
		change(&u)
		if DeriveUIDs(u).SOPInstanceUID == a.SOPInstanceUID {
			t.Fatalf("changed inputs %+v kept the UID", u)
		}
	}
}

// TestPostprocessKeepsComponentsAndFillsHoles: a component below min_component_mm3 is dropped,
// a lateral one goes to the review ROI, a hole is filled.
func TestPostprocessKeepsComponentsAndFillsHoles(t *testing.T) {
	g := &preproc.Geometry{Rows: 20, Cols: 40, RowCosine: preproc.Vec3{1, 0, 0}, ColumnCosine: preproc.Vec3{0, 1, 0},
		Normal: preproc.Vec3{0, 0, 1}, PixelSpacing: [2]float64{1, 1}, SliceSpacing: 2,
		Positions: []preproc.Vec3{{-20, -10, 0}, {-20, -10, 2}}}
	p := make([]float32, 2*20*40)
	set := func(k, r, c int) { p[(k*20+r)*40+c] = 0.9 }
	for k := range 2 {
		for r := 5; r <= 9; r++ { // a ring 5x5 around (7, 20), centre empty: on the midline
			for c := 18; c <= 22; c++ {
				if r != 7 || c != 20 {
					set(k, r, c)
				}
			}
		}
		for r := 2; r <= 4; r++ { // 3x3x2 = 18 mm3 x 2 = 36 mm3 at x = +14: lateral
			for c := 33; c <= 35; c++ {
				set(k, r, c)
			}
		}
	}
	set(0, 15, 2) // one voxel: 2 mm3, dropped
	s, err := Postprocess(g, Float32s(p), 0, Params{Threshold: 0.5, MinComponentMM3: 10, MidlineMM: 10})
	if err != nil {
		t.Fatal(err)
	}
	if s.Dropped != 1 || len(s.Components) != 2 {
		t.Fatalf("dropped %d, kept %+v", s.Dropped, s.Components)
	}
	if s.GTV.Count() != 50 || s.Review.Count() != 18 {
		t.Fatalf("GTV %d voxels (want the filled 5x5x2 = 50), review %d (want 18)", s.GTV.Count(), s.Review.Count())
	}
}

// TestPreviewDrawsTheContours: the preview is a PNG of three panels with the ROI's colour on it.
func TestPreviewDrawsTheContours(t *testing.T) {
	v := synthAxial(t, 64, 48, 6, [2]float64{1, 1.5})
	p := make([]float32, len(v.Pixels))
	c := v.Patient(3, 32, 24)
	for i := range p {
		k, r, col := i/(64*48), (i%(64*48))/48, i%48
		p[i] = float32(ball(c[0], c[1], c[2], 8)(v.Patient(k, float64(r), float64(col))))
	}
	seg, err := Postprocess(&v.Geometry, Float32s(p), c[0], Params{Threshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := Trace(v, Float32s(p), seg.GTV, 0.5, TraceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	roi := PreviewROI{Name: "GTV", Color: [3]uint8{255, 0, 255}, Slices: sl}
	if err := WritePreview(&b, PreviewInput{Volume: v, ROIs: []PreviewROI{roi}, Title: "m 1", Note: "AI DRAFT"}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	magenta := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r == 0xffff && g == 0 && bl == 0xffff {
				magenta++
			}
		}
	}
	// Three panels of 320 px height for 64 rows of 1 mm; 48 columns of 1.5 mm keep their width.
	if bounds.Dy() != 320+2*18 || bounds.Dx() != 3*int(math.Round(48*1.5*320/64.0))+2*4 || magenta < 100 {
		t.Fatalf("preview %v with %d contour pixels", bounds, magenta)
	}
}

// TestWrapWordsKeepsEveryWord: the preview's draft note is wrapped to the image's width, never
// cut: every character but the breaking spaces survives, in order, and no line is too long.
func TestWrapWordsKeepsEveryWord(t *testing.T) {
	note := "AI DRAFT: auto-generated, NOT REVIEWED, NOT FOR CLINICAL USE"
	squeeze := func(s string) string { return strings.ReplaceAll(s, " ", "") }
	for _, n := range []int{1, 8, 20, 29, 60, 200} {
		lines := wrapWords(note, n)
		for _, l := range lines {
			if len(l) > n || l == "" {
				t.Errorf("width %d: line %q", n, l)
			}
		}
		if squeeze(strings.Join(lines, "")) != squeeze(note) {
			t.Errorf("width %d: %q lost text", n, lines)
		}
		if n >= len(note) && len(lines) != 1 {
			t.Errorf("width %d: %q, want one line", n, lines)
		}
	}
}

// TestPreviewOfANarrowSeriesWrapsTheNote: a single panel of a series taller than wide is about
// 200 px, narrower than the 60-character draft note in the preview's font; the note takes more
// lines and the image grows to hold them.
func TestPreviewOfANarrowSeriesWrapsTheNote(t *testing.T) {
	v := synthAxial(t, 64, 40, 3, [2]float64{1, 1})
	note := "AI DRAFT: auto-generated, NOT REVIEWED, NOT FOR CLINICAL USE"
	var b bytes.Buffer
	if err := WritePreview(&b, PreviewInput{Volume: v, Title: "dmg-t2 1.2.0", Note: note}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	lines := wrapWords(note, (w-8)/glyphWidth)
	if len(note)*glyphWidth <= w-8 || len(lines) < 2 || h != previewPanel+18*(1+len(lines)) {
		t.Fatalf("%dx%d image, note in %d lines %q", w, h, len(lines), lines)
	}
}

// synthAxial writes an axial synthetic series (slices 3 mm apart) and loads it.
func synthAxial(t *testing.T, rows, cols, slices int, spacing [2]float64) *preproc.Volume {
	t.Helper()
	paths, err := synthmr.Write(t.TempDir(), synthmr.Spec{Rows: rows, Cols: cols, Slices: slices, Spacing: spacing,
		IOP: [6]float64{1, 0, 0, 0, 1, 0}, Step: 3})
	if err != nil {
		t.Fatal(err)
	}
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
