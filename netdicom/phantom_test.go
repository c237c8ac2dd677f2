package netdicom

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// phantom describes a synthetic MR series: an ellipsoid of bright signal in a darker head on a
// zero background. No patient data: every attribute is made up here.
type phantom struct {
	series   string // SeriesInstanceUID; also the root of the instance UIDs
	n        int    // number of instances
	rows     int
	cols     int
	count    bool // write ImagesInAcquisition
	sopClass string
}

func (p phantom) instanceUID(i int) string { return fmt.Sprintf("%s.%d", p.series, i+1) }

func mustElem(t testing.TB, tg tag.Tag, v any) *dicom.Element {
	t.Helper()
	e, err := dicom.NewElement(tg, v)
	if err != nil {
		t.Fatalf("element %v: %v", tg, err)
	}
	return e
}

// write writes the series as Explicit VR Little Endian Part 10 files into dir.
func (p phantom) write(t testing.TB, dir string) []string {
	t.Helper()
	if p.sopClass == "" {
		p.sopClass = MRImageStorageUID
	}
	var paths []string
	for i := range p.n {
		path := filepath.Join(dir, fmt.Sprintf("mr%04d.dcm", i+1))
		p.writeOne(t, path, i)
		paths = append(paths, path)
	}
	return paths
}

func (p phantom) writeOne(t testing.TB, path string, i int) {
	t.Helper()
	if p.sopClass == "" {
		p.sopClass = MRImageStorageUID
	}
	pix := make([]uint16, p.rows*p.cols)
	for y := range p.rows {
		for x := range p.cols {
			dx, dy, dz := float64(2*x-p.cols)/float64(p.cols), float64(2*y-p.rows)/float64(p.rows), float64(2*i-p.n)/float64(max(p.n, 1))
			r := dx*dx/0.8 + dy*dy/0.9 + dz*dz
			switch {
			case r < 0.1:
				pix[y*p.cols+x] = 3000 + uint16((x*7+y*3+i)%97)
			case r < 1:
				pix[y*p.cols+x] = 800 + uint16((x+y)%50)
			}
		}
	}
	inst := p.instanceUID(i)
	elems := []*dicom.Element{
		mustElem(t, tag.MediaStorageSOPClassUID, []string{p.sopClass}),
		mustElem(t, tag.MediaStorageSOPInstanceUID, []string{inst}),
		mustElem(t, tag.TransferSyntaxUID, []string{ExplicitVRLittleEndian}),
		mustElem(t, tag.SpecificCharacterSet, []string{"ISO_IR 100"}),
		mustElem(t, tag.ImageType, []string{"ORIGINAL", "PRIMARY", "M", "ND"}),
		mustElem(t, tag.SOPClassUID, []string{p.sopClass}),
		mustElem(t, tag.SOPInstanceUID, []string{inst}),
		mustElem(t, tag.StudyDate, []string{"20260101"}),
		mustElem(t, tag.Modality, []string{"MR"}),
		mustElem(t, tag.SeriesDescription, []string{"PHANTOM T2"}),
		mustElem(t, tag.PatientName, []string{"PHANTOM^MIDLINE"}),
		mustElem(t, tag.PatientID, []string{"PHANTOM-0001"}),
		mustElem(t, tag.SliceThickness, []string{"3"}),
		mustElem(t, tag.StudyInstanceUID, []string{p.series + ".0"}),
		mustElem(t, tag.SeriesInstanceUID, []string{p.series}),
		mustElem(t, tag.InstanceNumber, []string{fmt.Sprint(i + 1)}),
		mustElem(t, tag.ImagePositionPatient, []string{"-120", "-120", fmt.Sprint(3 * i)}),
		mustElem(t, tag.ImageOrientationPatient, []string{"1", "0", "0", "0", "1", "0"}),
	}
	if p.count {
		elems = append(elems, mustElem(t, tag.ImagesInAcquisition, []string{fmt.Sprint(p.n)}))
	}
	elems = append(elems,
		mustElem(t, tag.SamplesPerPixel, []int{1}),
		mustElem(t, tag.PhotometricInterpretation, []string{"MONOCHROME2"}),
		mustElem(t, tag.Rows, []int{p.rows}),
		mustElem(t, tag.Columns, []int{p.cols}),
		mustElem(t, tag.PixelSpacing, []string{"0.9375", "0.9375"}),
		mustElem(t, tag.BitsAllocated, []int{16}),
		mustElem(t, tag.BitsStored, []int{16}),
		mustElem(t, tag.HighBit, []int{15}),
		mustElem(t, tag.PixelRepresentation, []int{0}),
		mustElem(t, tag.PixelData, dicom.PixelDataInfo{Frames: []*frame.Frame{{NativeData: &frame.NativeFrame[uint16]{
			InternalBitsPerSample: 16, InternalRows: p.rows, InternalCols: p.cols, InternalSamplesPerPixel: 1, RawData: pix}}}}),
	)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dicom.Write(f, dicom.Dataset{Elements: elems}); err != nil {
		t.Fatalf("write phantom %s: %v", path, err)
	}
}
