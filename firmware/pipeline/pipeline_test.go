package pipeline

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/internal/maskio"
	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/preproc"
)

func seriesPaths(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no series in %s: %v", dir, err)
	}
	return paths
}

// shippedModel opens models/dmg-<seq>, closed when the test ends.
func shippedModel(t *testing.T, seq string, threads int) *Model {
	t.Helper()
	m, err := OpenModel(context.Background(), filepath.Join(testenv.Root(), "models", "dmg-"+strings.ToLower(seq)), accel.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type seed4Study struct {
	Series map[string]struct {
		GTV  string   `json:"gtv"`
		SOPs []string `json:"sop_instance_uids"`
	} `json:"series"`
}

type seed4Reference map[string]json.RawMessage

// TestLesionFreeBrain runs every shipped model on the series of its sequence in a phantom brain
// without a tumour (testdata/phantom/seed5-lesion-free: seed 5's study with the tumour left
// out, made by python -m midline_model.phantom --seed 5 --small --lesion-free): a model that
// contours healthy anatomy would put a false GTV in front of the planner.
func TestLesionFreeBrain(t *testing.T) {
	study := filepath.Join(testenv.Root(), "testdata", "phantom", "seed5-lesion-free")
	for _, seq := range []string{"T2", "FLAIR", "T1C"} {
		t.Run(seq, func(t *testing.T) {
			m := shippedModel(t, seq, 2)
			res, err := Run(context.Background(), m, seriesPaths(t, filepath.Join(study, seq)), Settings{DeviceID: "test", FirmwareVersion: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Empty() {
				t.Fatalf("%s found %d voxels of lesion in a lesion-free brain", seq, res.Segmentation.GTV.Count())
			}
		})
	}
}

// TestFieldOfViewCutFlag: a series whose field of view the head fills (testdata/phantom/fov96,
// 96 mm across: see its README line) is flagged, whatever the model finds on it, and the
// committed whole-head study is not.
func TestFieldOfViewCutFlag(t *testing.T) {
	m := shippedModel(t, "T2", 2)
	for study, cut := range map[string]bool{"fov96": true, "seed4": false} {
		t.Run(study, func(t *testing.T) {
			res, err := Run(context.Background(), m, seriesPaths(t, filepath.Join(testenv.Root(), "testdata", "phantom", study, "T2")),
				Settings{DeviceID: "test", FirmwareVersion: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if preproc.HasFieldOfViewCut(res.Classification.Flags) != cut {
				t.Fatalf("flags %q; want a field-of-view cut: %v", res.Classification.Flags, cut)
			}
			t.Logf("flags %q; %d voxels of GTV found", res.Classification.Flags, res.Segmentation.GTV.Count())
		})
	}
}

// TestSeed4RTStructMatchesToolchain runs each shipped model through the whole offline path on
// the committed phantom study, has plastimatch rasterize the written RT Structure Set, and
// compares its Dice against the phantom's ground-truth GTV with the toolchain's own evaluation
// (testdata/phantom/seed4/reference.json, made by python -m midline_model.seed4_reference):
// within 0.01.
func TestSeed4RTStructMatchesToolchain(t *testing.T) {
	plastimatch := testenv.Require(t, "plastimatch")
	dcmdump := testenv.Require(t, "dcmdump")
	study := filepath.Join(testenv.Root(), "testdata", "phantom", "seed4")
	var st seed4Study
	var ref seed4Reference
	readJSON(t, filepath.Join(study, "study.json"), &st)
	readJSON(t, filepath.Join(study, "reference.json"), &ref)
	for _, seq := range []string{"T2", "T1C"} {
		t.Run(seq, func(t *testing.T) {
			var want struct {
				Dice    float64 `json:"dice"`
				PredCM3 float64 `json:"pred_cm3"`
			}
			if err := json.Unmarshal(ref[seq], &want); err != nil {
				t.Fatalf("reference.json %s: %v", seq, err)
			}
			m := shippedModel(t, seq, 1)
			series := filepath.Join(study, seq)
			res, err := Run(context.Background(), m, seriesPaths(t, series), Settings{DeviceID: "test", FirmwareVersion: "test",
				Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			rd, files, err := res.WriteFiles(out, "job-1", contour.Profile{}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if files.RTStruct == "" {
				t.Fatalf("no lesion found on seed 4 %s (toolchain: %.3f cm3)", seq, want.PredCM3)
			}
			// The ROI itself carries the whole draft warning of a model not for clinical use.
			desc, err := exec.Command(dcmdump, "-q", "+L", "+P", "3006,0028", "+P", "3006,0038", files.RTStruct).CombinedOutput()
			if err != nil || !strings.Contains(string(desc), "NOT REVIEWED, NOT FOR CLINICAL USE]") || !strings.Contains(string(desc), "[NOT REVIEWED: dmg-") {
				t.Errorf("ROI descriptions: %v\n%s", err, desc)
			}
			cmd := exec.Command(plastimatch, "convert", "--input", files.RTStruct, "--referenced-ct", series,
				"--output-prefix", filepath.Join(out, "pm"), "--prefix-format", "nrrd")
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("plastimatch: %v\n%s", err, msg)
			}
			roi := rd.Structure.ROIs[0].Name
			pm, err := maskio.ReadNRRD(filepath.Join(out, "pm", roi+".nrrd"))
			if err != nil {
				t.Fatal(err)
			}
			gt, err := maskio.ReadNIfTI(filepath.Join(study, st.Series[seq].GTV))
			if err != nil {
				t.Fatal(err)
			}
			v := res.Volume
			plane := v.Rows * v.Cols
			if pm.X != v.Cols || pm.Y != v.Rows || pm.Z != v.Slices() || gt.X != v.Cols || gt.Y != v.Rows || gt.Z != v.Slices() {
				t.Fatalf("grids: plastimatch %dx%dx%d, ground truth %dx%dx%d, series %dx%dx%d", pm.X, pm.Y, pm.Z, gt.X, gt.Y, gt.Z, v.Cols, v.Rows, v.Slices())
			}
			// The ground truth's slices are in study.json's order; ours are sorted along the normal.
			inter, a, b := 0, 0, 0
			for k, sop := range v.SOPInstanceUIDs {
				g := slices.Index(st.Series[seq].SOPs, sop)
				if g < 0 {
					t.Fatalf("slice %d (%s) not in study.json", k, sop)
				}
				for i := range plane {
					p, q := pm.Data[k*plane+i] != 0, gt.Data[g*plane+i] != 0
					if p {
						a++
					}
					if q {
						b++
					}
					if p && q {
						inter++
					}
				}
			}
			dice := 2 * float64(inter) / float64(a+b)
			voxel := v.PixelSpacing[0] * v.PixelSpacing[1] * v.SliceSpacing / 1000
			t.Logf("%s: RTSTRUCT through plastimatch: Dice %.4f against the phantom GTV (toolchain %.4f), %.3f cm3 (toolchain %.3f, mask %.3f)",
				seq, dice, want.Dice, float64(a)*voxel, want.PredCM3, rd.VolumesCM3[0])
			if math.Abs(dice-want.Dice) > 0.01 {
				t.Errorf("%s: Dice %.4f, toolchain %.4f: differ by more than 0.01", seq, dice, want.Dice)
			}
			checkWithRTUtils(t, series, files.RTStruct, res, rd, roi)
		})
	}
}

// checkWithRTUtils reads the RT Structure Set with rt-utils (a second, independent reader, from
// PyPI): on every slice it must hold at least our pixels and at most our pixels grown by one
// pixel (its rasterizer rounds vertices to the grid and fills the pixels edges touch), and no
// slice may be missing or extra.
func checkWithRTUtils(t *testing.T, series, rtstruct string, res *Result, rd *Rendered, roi string) {
	t.Helper()
	py := testenv.ToolchainPython(t)
	cmd := exec.Command(py, "-m", "midline_model.rtcheck", "--series", series, "--rtstruct", rtstruct)
	cmd.Dir = filepath.Join(testenv.Root(), "scripts", "model")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rtcheck: %v\n%s", err, out)
	}
	var got map[string]struct {
		Voxels   int            `json:"voxels"`
		CM3      float64        `json:"cm3"`
		PerSlice map[string]int `json:"per_slice"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("rtcheck output: %v\n%s", err, out)
	}
	r, ok := got[roi]
	if !ok {
		t.Fatalf("rt-utils found no ROI %s: %s", roi, out)
	}
	v := res.Volume
	m := res.Segmentation.GTV
	plane := v.Rows * v.Cols
	ours, grown := 0, 0
	for k, sop := range v.SOPInstanceUIDs {
		in := m.In[k*plane : (k+1)*plane]
		n, g := 0, 0
		for i := range in {
			if in[i] {
				n++
			}
			if near(in, i, v.Rows, v.Cols) {
				g++
			}
		}
		ours += n
		grown += g
		if c := r.PerSlice[sop]; c < n || c > g {
			t.Errorf("rt-utils: slice %d holds %d pixels; ours %d, grown by a pixel %d", k, c, n, g)
		}
	}
	if len(r.PerSlice) != len(rd.Structure.ROIs[0].Slices) {
		t.Errorf("rt-utils: %d slices with contours, we wrote %d", len(r.PerSlice), len(rd.Structure.ROIs[0].Slices))
	}
	t.Logf("rt-utils: %s %d voxels (%.3f cm3); ours %d, grown by a pixel %d", roi, r.Voxels, r.CM3, ours, grown)
}

// near says whether pixel i or one of its eight neighbours is set.
func near(in []bool, i, rows, cols int) bool {
	r, c := i/cols, i%cols
	for dr := -1; dr <= 1; dr++ {
		for dc := -1; dc <= 1; dc++ {
			rr, cc := r+dr, c+dc
			if rr >= 0 && cc >= 0 && rr < rows && cc < cols && in[rr*cols+cc] {
				return true
			}
		}
	}
	return false
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
