// Package synthmr writes small synthetic MR series (every attribute invented here, no patient
// data) with exact geometry, for tests of the packages that read series and write results
// against them: any orientation, anisotropic pixels, a chosen character set.
package synthmr

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Spec describes a single-frame MR Image Storage series.
type Spec struct {
	Rows, Cols, Slices int
	Spacing            [2]float64 // PixelSpacing: row spacing, column spacing (mm)
	IOP                [6]float64 // ImageOrientationPatient
	Origin             [3]float64 // ImagePositionPatient of the first slice
	Step               float64    // mm between slices along RowCosine x ColumnCosine
	// Value is the stored pixel value at (slice, row, column); nil gives a gentle gradient.
	Value func(k, r, c int) uint16
	// PatientName and SpecificCharacterSet default to an ASCII phantom name.
	PatientName, Charset string
	SeriesDescription    string
	UIDRoot              string // default 2.25.777
}

// Write writes the series into dir as IM0001.dcm, ... and returns the paths in slice order.
func Write(dir string, s Spec) ([]string, error) {
	if s.UIDRoot == "" {
		s.UIDRoot = "2.25.777"
	}
	if s.PatientName == "" {
		s.PatientName = "SYNTH^CONTOUR"
	}
	if s.SeriesDescription == "" {
		s.SeriesDescription = "T2_TSE_TRA synthetic"
	}
	r := [3]float64{s.IOP[0], s.IOP[1], s.IOP[2]}
	c := [3]float64{s.IOP[3], s.IOP[4], s.IOP[5]}
	n := [3]float64{r[1]*c[2] - r[2]*c[1], r[2]*c[0] - r[0]*c[2], r[0]*c[1] - r[1]*c[0]}
	var paths []string
	for k := range s.Slices {
		var pos []string
		for a := range 3 {
			pos = append(pos, ds(s.Origin[a]+float64(k)*s.Step*n[a]))
		}
		p := filepath.Join(dir, fmt.Sprintf("IM%04d.dcm", k+1))
		if err := s.writeOne(p, k, pos); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func ds(v float64) string { return fmt.Sprintf("%.10g", v) }

func (s Spec) writeOne(path string, k int, pos []string) error {
	pix := make([]uint16, s.Rows*s.Cols)
	for r := range s.Rows {
		for c := range s.Cols {
			if s.Value != nil {
				pix[r*s.Cols+c] = s.Value(k, r, c)
			} else {
				pix[r*s.Cols+c] = uint16(100 + r + c + 10*k)
			}
		}
	}
	var iop []string
	for _, v := range s.IOP {
		iop = append(iop, ds(v))
	}
	const mr = "1.2.840.10008.5.1.4.1.1.4"
	inst := fmt.Sprintf("%s.2.%d", s.UIDRoot, k+1)
	var els []*dicom.Element
	var err error
	add := func(t tag.Tag, v any) {
		e, e2 := dicom.NewElement(t, v)
		if e2 != nil && err == nil {
			err = fmt.Errorf("synthmr: %v: %w", t, e2)
		}
		els = append(els, e)
	}
	add(tag.MediaStorageSOPClassUID, []string{mr})
	add(tag.MediaStorageSOPInstanceUID, []string{inst})
	add(tag.TransferSyntaxUID, []string{"1.2.840.10008.1.2.1"})
	if s.Charset != "" {
		add(tag.SpecificCharacterSet, []string{s.Charset})
	}
	add(tag.ImageType, []string{"ORIGINAL", "PRIMARY", "M", "DIS3D"})
	add(tag.SOPClassUID, []string{mr})
	add(tag.SOPInstanceUID, []string{inst})
	add(tag.StudyDate, []string{"20260101"})
	add(tag.StudyTime, []string{"101010"})
	add(tag.AccessionNumber, []string{"SYN0001"})
	add(tag.Modality, []string{"MR"})
	add(tag.Manufacturer, []string{"SIEMENS"})
	add(tag.SeriesDescription, []string{s.SeriesDescription})
	add(tag.PatientName, []string{s.PatientName})
	add(tag.PatientID, []string{"SYNTH-0001"})
	add(tag.PatientBirthDate, []string{"20100101"})
	add(tag.PatientSex, []string{"O"})
	add(tag.ScanningSequence, []string{"SE"})
	add(tag.SequenceVariant, []string{"SK", "SP"})
	add(tag.MRAcquisitionType, []string{"2D"})
	add(tag.RepetitionTime, []string{"4000"})
	add(tag.EchoTime, []string{"98"})
	add(tag.StudyInstanceUID, []string{s.UIDRoot + ".1"})
	add(tag.SeriesInstanceUID, []string{s.UIDRoot + ".3"})
	add(tag.StudyID, []string{"1"})
	add(tag.SeriesNumber, []string{"3"})
	add(tag.InstanceNumber, []string{fmt.Sprint(k + 1)})
	add(tag.ImagePositionPatient, pos)
	add(tag.ImageOrientationPatient, iop)
	add(tag.FrameOfReferenceUID, []string{s.UIDRoot + ".4"})
	add(tag.SamplesPerPixel, []int{1})
	add(tag.PhotometricInterpretation, []string{"MONOCHROME2"})
	add(tag.Rows, []int{s.Rows})
	add(tag.Columns, []int{s.Cols})
	add(tag.PixelSpacing, []string{ds(s.Spacing[0]), ds(s.Spacing[1])})
	add(tag.SliceThickness, []string{ds(s.Step)})
	add(tag.BitsAllocated, []int{16})
	add(tag.BitsStored, []int{16})
	add(tag.HighBit, []int{15})
	add(tag.PixelRepresentation, []int{0})
	add(tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{{NativeData: &frame.NativeFrame[uint16]{
		InternalBitsPerSample: 16, InternalRows: s.Rows, InternalCols: s.Cols, InternalSamplesPerPixel: 1, RawData: pix}}}})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := dicom.Write(f, dicom.Dataset{Elements: els}, dicom.SkipVRVerification()); err != nil {
		f.Close()
		return fmt.Errorf("synthmr: write %s: %w", path, err)
	}
	return f.Close()
}
