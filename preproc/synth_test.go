package preproc

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/midline-rt/midline/netdicom"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// synth describes a synthetic single-frame MR series for loader tests. No patient data: every
// attribute is invented here. Hooks let a test row break one thing.
type synth struct {
	rows, cols int
	n          int
	spacing    [2]float64 // row, column
	iop        [6]float64
	origin     Vec3
	step       float64 // mm between slices along the normal
	slope      string  // RescaleSlope; "" for none
	intercept  string
	// pos, iopOf, patient and rowsOf override per instance i when set.
	pos     func(i int) Vec3
	iopOf   func(i int) [6]float64
	patient func(i int) string
	study   func(i int) string
	rowsOf  func(i int) int
	value   func(i, r, c int) uint16
	extra   func(i int) []*dicom.Element
}

func defaultSynth() synth {
	return synth{rows: 12, cols: 10, n: 5, spacing: [2]float64{0.8, 1.1},
		iop: [6]float64{1, 0, 0, 0, 1, 0}, origin: Vec3{-5, -6, 10}, step: 3}
}

func (s synth) position(i int) Vec3 {
	if s.pos != nil {
		return s.pos(i)
	}
	r, c := Vec3{s.iop[0], s.iop[1], s.iop[2]}, Vec3{s.iop[3], s.iop[4], s.iop[5]}
	return s.origin.add(r.cross(c).scale(s.step * float64(i)))
}

// pixel is the stored value of (instance i, row r, column c): unique per voxel so that any
// misplacement shows.
func (s synth) pixel(i, r, c int) uint16 {
	if s.value != nil {
		return s.value(i, r, c)
	}
	return uint16(100*i + 7*r + c)
}

func el(t testing.TB, tg tag.Tag, v any) *dicom.Element {
	t.Helper()
	e, err := dicom.NewElement(tg, v)
	if err != nil {
		t.Fatalf("element %v: %v", tg, err)
	}
	return e
}

func ds(v float64) string { return fmt.Sprintf("%.6g", v) }

func (s synth) write(t testing.TB, dir string) []string {
	t.Helper()
	var paths []string
	// Written in reverse so that file order is not slice order.
	for i := s.n - 1; i >= 0; i-- {
		p := filepath.Join(dir, fmt.Sprintf("im%04d.dcm", i+1))
		s.writeOne(t, p, i)
		paths = append(paths, p)
	}
	return paths
}

func (s synth) writeOne(t testing.TB, path string, i int) {
	t.Helper()
	rows := s.rows
	if s.rowsOf != nil {
		rows = s.rowsOf(i)
	}
	iop := s.iop
	if s.iopOf != nil {
		iop = s.iopOf(i)
	}
	pid, study := "SYNTH-0001", "2.25.1000"
	if s.patient != nil {
		pid = s.patient(i)
	}
	if s.study != nil {
		study = s.study(i)
	}
	pix := make([]uint16, rows*s.cols)
	for r := range rows {
		for c := range s.cols {
			pix[r*s.cols+c] = s.pixel(i, r, c)
		}
	}
	p := s.position(i)
	inst := fmt.Sprintf("2.25.2000.%d", i+1)
	var iops []string
	for _, v := range iop {
		iops = append(iops, ds(v))
	}
	elems := []*dicom.Element{
		el(t, tag.MediaStorageSOPClassUID, []string{netdicom.MRImageStorageUID}),
		el(t, tag.MediaStorageSOPInstanceUID, []string{inst}),
		el(t, tag.TransferSyntaxUID, []string{netdicom.ExplicitVRLittleEndian}),
		el(t, tag.SpecificCharacterSet, []string{"ISO_IR 100"}),
		el(t, tag.ImageType, []string{"ORIGINAL", "PRIMARY", "M", "DIS3D"}),
		el(t, tag.SOPClassUID, []string{netdicom.MRImageStorageUID}),
		el(t, tag.SOPInstanceUID, []string{inst}),
		el(t, tag.StudyDate, []string{"20260101"}),
		el(t, tag.Modality, []string{"MR"}),
		el(t, tag.Manufacturer, []string{"SIEMENS"}),
		el(t, tag.SeriesDescription, []string{"t2_tse_tra"}),
		el(t, tag.PatientName, []string{"SYNTH^PREPROC"}),
		el(t, tag.PatientID, []string{pid}),
		el(t, tag.ScanningSequence, []string{"SE"}),
		el(t, tag.SequenceVariant, []string{"SK", "SP"}),
		el(t, tag.RepetitionTime, []string{"4000"}),
		el(t, tag.EchoTime, []string{"98"}),
		el(t, tag.StudyInstanceUID, []string{study}),
		el(t, tag.SeriesInstanceUID, []string{"2.25.3000"}),
		el(t, tag.InstanceNumber, []string{fmt.Sprint(i + 1)}),
		el(t, tag.ImagePositionPatient, []string{ds(p[0]), ds(p[1]), ds(p[2])}),
		el(t, tag.ImageOrientationPatient, iops),
		el(t, tag.FrameOfReferenceUID, []string{"2.25.4000"}),
		el(t, tag.SamplesPerPixel, []int{1}),
		el(t, tag.PhotometricInterpretation, []string{"MONOCHROME2"}),
		el(t, tag.Rows, []int{rows}),
		el(t, tag.Columns, []int{s.cols}),
		el(t, tag.PixelSpacing, []string{ds(s.spacing[0]), ds(s.spacing[1])}),
		el(t, tag.BitsAllocated, []int{16}),
		el(t, tag.BitsStored, []int{16}),
		el(t, tag.HighBit, []int{15}),
		el(t, tag.PixelRepresentation, []int{0}),
	}
	if s.slope != "" {
		elems = append(elems, el(t, tag.RescaleIntercept, []string{s.intercept}), el(t, tag.RescaleSlope, []string{s.slope}))
	}
	if s.extra != nil {
		elems = append(elems, s.extra(i)...)
	}
	elems = append(elems, el(t, tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{{NativeData: &frame.NativeFrame[uint16]{
		InternalBitsPerSample: 16, InternalRows: rows, InternalCols: s.cols, InternalSamplesPerPixel: 1, RawData: pix}}}}))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dicom.Write(f, dicom.Dataset{Elements: elems}, dicom.SkipVRVerification()); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// checkVoxels compares every voxel of v with the synth's values in slice order.
func checkVoxels(t *testing.T, v *Volume, s synth, slope, icpt float32) {
	t.Helper()
	for k := range s.n {
		for r := range s.rows {
			for c := range s.cols {
				want := float32(float32(s.pixel(k, r, c))*slope) + icpt
				if got := v.Slice(k)[r*s.cols+c]; got != want && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want))) {
					t.Fatalf("slice %d (%d,%d) = %v, want %v", k, r, c, got, want)
				}
			}
		}
	}
}
