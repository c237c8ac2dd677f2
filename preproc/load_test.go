package preproc

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/netdicom"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const phantomDir = "../testdata/phantom/seed4"

func TestLoadSyntheticGeometry(t *testing.T) {
	s := defaultSynth()
	// A tilted, oblique orientation with anisotropic pixels catches row/column swaps.
	a := 0.3
	s.iop = [6]float64{math.Cos(a), math.Sin(a), 0, -math.Sin(a) * 0.8, math.Cos(a) * 0.8, 0.6}
	paths := s.write(t, t.TempDir())
	v, err := LoadSeries(context.Background(), paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Rows != s.rows || v.Cols != s.cols || v.Slices() != s.n {
		t.Fatalf("size %v", v.Geometry.String())
	}
	if v.PixelSpacing != s.spacing {
		t.Errorf("PixelSpacing %v, want %v (row spacing first)", v.PixelSpacing, s.spacing)
	}
	if math.Abs(v.SliceSpacing-s.step) > 1e-4 {
		t.Errorf("SliceSpacing %v, want %v", v.SliceSpacing, s.step)
	}
	checkVoxels(t, v, s, 1, 0)
	for k := range s.n {
		if want := fmt.Sprintf("2.25.2000.%d", k+1); v.SOPInstanceUIDs[k] != want {
			t.Errorf("slice %d from %s, want %s", k, v.SOPInstanceUIDs[k], want)
		}
		// Pixel (r, c) lies c column spacings along the row cosine, r row spacings along
		// the column cosine; and Index inverts Patient.
		want := s.position(k).add(v.RowCosine.scale(3 * s.spacing[1])).add(v.ColumnCosine.scale(2 * s.spacing[0]))
		got := v.Patient(k, 2, 3)
		if !got.near(want, 1e-4) {
			t.Errorf("Patient(%d,2,3) = %v, want %v", k, got, want)
		}
		kk, r, c := v.Index(got)
		if math.Abs(kk-float64(k)) > 1e-6 || math.Abs(r-2) > 1e-6 || math.Abs(c-3) > 1e-6 {
			t.Errorf("Index(Patient(%d,2,3)) = %v %v %v", k, kk, r, c)
		}
	}
	if v.Header.SeriesInstanceUID != "2.25.3000" || v.Header.Modality != "MR" || v.Header.SOPClassUID != netdicom.MRImageStorageUID {
		t.Errorf("header %+v", v.Header)
	}
	var pid bool
	for _, e := range v.Header.PatientStudy {
		pid = pid || e.Tag == tag.PatientID
	}
	if !pid {
		t.Error("PatientStudy lacks PatientID")
	}
}

func TestLoadRescale(t *testing.T) {
	s := defaultSynth()
	s.slope, s.intercept = "0.5", "-3.25"
	v, err := LoadSeries(context.Background(), s.write(t, t.TempDir()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkVoxels(t, v, s, 0.5, -3.25)
}

// Every accepted transfer syntax gives the same voxels: dcmtk converts the files.
func TestLoadTransferSyntaxes(t *testing.T) {
	testenv.Require(t, "dcmconv")
	testenv.Require(t, "dcmcrle")
	s := defaultSynth()
	src := s.write(t, t.TempDir())
	for _, tc := range []struct {
		name string
		cmd  []string
		ts   string
	}{
		{"implicit", []string{"dcmconv", "+ti"}, netdicom.ImplicitVRLittleEndian},
		{"big endian", []string{"dcmconv", "+tb"}, netdicom.ExplicitVRBigEndian},
		{"deflated", []string{"dcmconv", "+td"}, netdicom.DeflatedExplicitVRLE},
		{"rle", []string{"dcmcrle"}, netdicom.RLELossless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for _, p := range src {
				out := filepath.Join(dir, filepath.Base(p))
				args := append(slices.Clone(tc.cmd[1:]), p, out)
				if b, err := exec.Command(tc.cmd[0], args...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", tc.cmd, err, b)
				}
				paths = append(paths, out)
			}
			v, err := LoadSeries(context.Background(), paths, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if v.Header.TransferSyntaxUID != tc.ts {
				t.Errorf("transfer syntax %s, want %s", v.Header.TransferSyntaxUID, tc.ts)
			}
			checkVoxels(t, v, s, 1, 0)
		})
	}
}

// The committed netdicom instances (one 8x6 slice each, five syntaxes) load to one image.
func TestLoadNetdicomInstances(t *testing.T) {
	files, _ := filepath.Glob("testdata/instances/*.dcm")
	if len(files) != 5 {
		t.Fatalf("%d files in testdata/instances", len(files))
	}
	var first []float32
	for _, f := range files {
		v, err := LoadSeries(context.Background(), []string{f}, Options{MinSlices: 1})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if first == nil {
			first = v.Pixels
		} else if !slices.Equal(first, v.Pixels) {
			t.Errorf("%s: pixels differ from %s", f, files[0])
		}
	}
}

type phantomStudy struct {
	Series map[string]struct {
		SOPInstanceUIDs []string  `json:"sop_instance_uids"`
		Rescale         []float64 `json:"rescale"`
	} `json:"series"`
}

func phantomPaths(t testing.TB, seq string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(phantomDir, seq, "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("phantom %s: %v", seq, err)
	}
	return paths
}

func TestLoadPhantom(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(phantomDir, "study.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st phantomStudy
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []string{"T2", "FLAIR", "T1C"} {
		v, err := LoadSeries(context.Background(), phantomPaths(t, seq), Options{})
		if err != nil {
			t.Fatalf("%s: %v", seq, err)
		}
		if v.Rows != 160 || v.Cols != 160 || v.Slices() != 14 || math.Abs(v.SliceSpacing-5) > 1e-3 {
			t.Errorf("%s: %s", seq, v.Geometry.String())
		}
		// study.json lists the instances in the mask's slice order, which is the order
		// along the normal.
		if want := st.Series[seq].SOPInstanceUIDs; !slices.Equal(v.SOPInstanceUIDs, want) {
			t.Errorf("%s: slice order\n got %v\nwant %v", seq, v.SOPInstanceUIDs, want)
		}
	}
}

func TestLoadEnhancedMultiFrame(t *testing.T) {
	s := defaultSynth()
	path := filepath.Join(t.TempDir(), "enhanced.dcm")
	writeEnhanced(t, path, s, []int{3, 0, 4, 1, 2})
	v, err := LoadSeries(context.Background(), []string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkVoxels(t, v, s, 2, -1)
	if want := []int{2, 4, 5, 1, 3}; !slices.Equal(v.Frames, want) {
		t.Errorf("frames in slice order %v, want %v", v.Frames, want)
	}
	if v.PixelSpacing != s.spacing || math.Abs(v.SliceSpacing-s.step) > 1e-4 {
		t.Errorf("geometry %s", v.Geometry.String())
	}
	if a := v.Header.Acquisition; a.RepetitionTime != 4000 || a.EchoTime != 98 || a.ContrastAdministered != "NO" {
		t.Errorf("acquisition from functional groups: %+v", a)
	}
}

// writeEnhanced writes s as one Enhanced MR instance whose frame f holds slice order[f], with
// geometry in the functional groups and a rescale of 2x - 1 in the shared groups.
func writeEnhanced(t *testing.T, path string, s synth, order []int) {
	t.Helper()
	seq := func(tg tag.Tag, items ...[]*dicom.Element) *dicom.Element { return el(t, tg, items) }
	var perFrame [][]*dicom.Element
	var frames []*frame.Frame
	for _, k := range order {
		p := s.position(k)
		perFrame = append(perFrame, []*dicom.Element{
			seq(tag.PlanePositionSequence, []*dicom.Element{el(t, tag.ImagePositionPatient, []string{ds(p[0]), ds(p[1]), ds(p[2])})}),
			seq(tag.MREchoSequence, []*dicom.Element{el(t, tag.EffectiveEchoTime, []float64{98})}),
		})
		pix := make([]uint16, s.rows*s.cols)
		for r := range s.rows {
			for c := range s.cols {
				pix[r*s.cols+c] = s.pixel(k, r, c)
			}
		}
		frames = append(frames, &frame.Frame{NativeData: &frame.NativeFrame[uint16]{
			InternalBitsPerSample: 16, InternalRows: s.rows, InternalCols: s.cols, InternalSamplesPerPixel: 1, RawData: pix}})
	}
	var iops []string
	for _, x := range s.iop {
		iops = append(iops, ds(x))
	}
	shared := []*dicom.Element{
		seq(tag.PixelMeasuresSequence, []*dicom.Element{el(t, tag.PixelSpacing, []string{ds(s.spacing[0]), ds(s.spacing[1])}), el(t, tag.SliceThickness, []string{"3"})}),
		seq(tag.PlaneOrientationSequence, []*dicom.Element{el(t, tag.ImageOrientationPatient, iops)}),
		seq(tag.PixelValueTransformationSequence, []*dicom.Element{el(t, tag.RescaleIntercept, []string{"-1"}), el(t, tag.RescaleSlope, []string{"2"}), el(t, tag.RescaleType, []string{"US"})}),
		seq(tag.MRTimingAndRelatedParametersSequence, []*dicom.Element{el(t, tag.RepetitionTime, []string{"4000"})}),
		seq(tag.ContrastBolusUsageSequence, []*dicom.Element{el(t, tag.ContrastBolusAgentAdministered, []string{"NO"})}),
	}
	inst := "2.25.5000.1"
	elems := []*dicom.Element{
		el(t, tag.MediaStorageSOPClassUID, []string{netdicom.EnhancedMRStorageUID}),
		el(t, tag.MediaStorageSOPInstanceUID, []string{inst}),
		el(t, tag.TransferSyntaxUID, []string{netdicom.ExplicitVRLittleEndian}),
		el(t, tag.ImageType, []string{"ORIGINAL", "PRIMARY", "M", "NONE"}),
		el(t, tag.SOPClassUID, []string{netdicom.EnhancedMRStorageUID}),
		el(t, tag.SOPInstanceUID, []string{inst}),
		el(t, tag.Modality, []string{"MR"}),
		el(t, tag.PatientID, []string{"SYNTH-0001"}),
		el(t, tag.EchoPulseSequence, []string{"SPIN"}),
		el(t, tag.StudyInstanceUID, []string{"2.25.1000"}),
		el(t, tag.SeriesInstanceUID, []string{"2.25.5000"}),
		el(t, tag.FrameOfReferenceUID, []string{"2.25.4000"}),
		el(t, tag.NumberOfFrames, []string{fmt.Sprint(len(order))}),
		seq(tag.SharedFunctionalGroupsSequence, shared),
		el(t, tag.PerFrameFunctionalGroupsSequence, perFrame),
		el(t, tag.SamplesPerPixel, []int{1}),
		el(t, tag.PhotometricInterpretation, []string{"MONOCHROME2"}),
		el(t, tag.Rows, []int{s.rows}),
		el(t, tag.Columns, []int{s.cols}),
		el(t, tag.BitsAllocated, []int{16}),
		el(t, tag.BitsStored, []int{16}),
		el(t, tag.HighBit, []int{15}),
		el(t, tag.PixelRepresentation, []int{0}),
		el(t, tag.PixelData, dicom.PixelDataInfo{Frames: frames}),
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dicom.Write(f, dicom.Dataset{Elements: elems}, dicom.SkipVRVerification()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*synth)
		opt    Options
		want   error
		substr string
	}{
		{"non-uniform spacing", func(s *synth) {
			s.pos = func(i int) Vec3 { return Vec3{0, 0, 3*float64(i) + 0.4*float64(i/3)} }
		}, Options{}, ErrSpacing, "between slices 2 and 3"},
		{"missing slice", func(s *synth) {
			s.pos = func(i int) Vec3 { return Vec3{0, 0, 3*float64(i) + 3*float64(i/3)} }
		}, Options{}, ErrMissingSlice, "2 times the spacing"},
		{"mixed orientations", func(s *synth) {
			s.iopOf = func(i int) [6]float64 {
				if i == 2 {
					return [6]float64{0, 1, 0, 0, 0, -1}
				}
				return s.iop
			}
		}, Options{}, ErrInconsistent, "orientations"},
		{"mixed sizes", func(s *synth) {
			s.rowsOf = func(i int) int { return s.rows + i%2*2 }
			s.value = func(i, r, c int) uint16 { return 1 }
		}, Options{}, ErrInconsistent, "matrices"},
		{"one slice", func(s *synth) { s.n = 1 }, Options{}, ErrTooFewSlices, "1 slice"},
		{"end slice missing", func(s *synth) {
			s.extra = func(i int) []*dicom.Element { return []*dicom.Element{el(t, tag.ImagesInAcquisition, []string{"6"})} }
		}, Options{}, ErrMissingSlice, "5 of the 6 images"},
		{"repeated position", func(s *synth) {
			s.pos = func(i int) Vec3 { return Vec3{0, 0, float64(3 * (i / 2))} }
		}, Options{}, ErrInconsistent, "repeated positions"},
		{"huge matrix", func(s *synth) {
			s.rows, s.cols, s.n = 2048, 2048, 2
			s.value = func(i, r, c int) uint16 { return 0 }
		}, Options{}, ErrTooLarge, "2048x2048"},
		{"too many voxels", func(s *synth) {}, Options{Limits: Limits{MaxFileBytes: 1 << 20, MaxMatrix: 64, MaxSlices: 64, MaxVoxels: 100}}, ErrTooLarge, "voxels"},
		{"NaN slope", func(s *synth) { s.slope, s.intercept = "NaN", "0" }, Options{}, ErrBadValues, "RescaleSlope"},
		{"rescale overflows", func(s *synth) { s.slope, s.intercept = "1e+38", "0" }, Options{}, ErrBadValues, "+Inf"},
		{"infinite intercept", func(s *synth) { s.slope, s.intercept = "1", "1e+999" }, Options{}, ErrBadValues, "RescaleIntercept"},
		{"other patient", func(s *synth) {
			s.patient = func(i int) string { return fmt.Sprintf("SYNTH-%04d", 1+i/4) }
		}, Options{}, ErrWrongPatient, "PatientID differs"},
		{"other study", func(s *synth) {
			s.study = func(i int) string { return fmt.Sprintf("2.25.%d", 1000+i/4) }
		}, Options{}, ErrWrongPatient, "StudyInstanceUID differs"},
		{"shifted in plane", func(s *synth) {
			s.pos = func(i int) Vec3 { return Vec3{float64(i / 3), 0, 3 * float64(i)} }
		}, Options{}, ErrInconsistent, "shifted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultSynth()
			tc.mod(&s)
			_, err := LoadSeries(context.Background(), s.write(t, t.TempDir()), tc.opt)
			if !errors.Is(err, tc.want) || !strings.Contains(fmt.Sprint(err), tc.substr) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.substr)
			}
			t.Log(err)
		})
	}
}

// Damaged files: truncated anywhere, a hostile length, pixel data missing.
func TestLoadDamagedFiles(t *testing.T) {
	s := defaultSynth()
	s.n = 2
	paths := s.write(t, t.TempDir())
	good, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{100, 140, 300, len(good) / 2, len(good) - 10, len(good) - 1} {
		t.Run(fmt.Sprintf("truncated at %d", cut), func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.dcm")
			os.WriteFile(bad, good[:cut], 0o644)
			_, err := LoadSeries(context.Background(), []string{bad, paths[1]}, Options{})
			if !errors.Is(err, ErrBadInstance) {
				t.Fatalf("got %v, want ErrBadInstance", err)
			}
		})
	}
	t.Run("deflate bomb", func(t *testing.T) {
		src := filepath.Join("testdata", "instances", "mr_small_deflated.dcm")
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(src)
		meta, err := netdicom.ReadFileMeta(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var z bytes.Buffer
		zw, _ := flate.NewWriter(&z, flate.BestCompression)
		zw.Write(make([]byte, 4<<20))
		zw.Close()
		bad := filepath.Join(t.TempDir(), "bomb.dcm")
		os.WriteFile(bad, append(b[:meta.DataOffset:meta.DataOffset], z.Bytes()...), 0o644)
		lim := Limits{MaxFileBytes: 1 << 20, MaxMatrix: 64, MaxSlices: 8, MaxVoxels: 1 << 16}
		_, err = LoadSeries(context.Background(), []string{bad}, Options{Limits: lim, MinSlices: 1})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "inflates beyond") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("hostile length", func(t *testing.T) {
		b := slices.Clone(good)
		i := strings.Index(string(b), "SYNTH^PREPROC")
		// The PN length field sits just before the value; 0xFFFE is past the file's end.
		b[i-2], b[i-1] = 0xFE, 0xFF
		bad := filepath.Join(t.TempDir(), "bad.dcm")
		os.WriteFile(bad, b, 0o644)
		_, err := LoadSeries(context.Background(), []string{bad, paths[1]}, Options{})
		if !errors.Is(err, ErrBadInstance) || !strings.Contains(err.Error(), "left in its container") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestLoadCancelled(t *testing.T) {
	paths := defaultSynth().write(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadSeries(ctx, paths, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
