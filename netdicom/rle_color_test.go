package netdicom

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// writeRGB writes an 8-bit RGB Secondary Capture phantom (colour by pixel) of the given size.
// The three samples differ from each other and along the row, so that a decoder that swaps
// samples or lays them out by plane cannot match.
func writeRGB(t *testing.T, path string, rows, cols, frames int) {
	t.Helper()
	var fr []*frame.Frame
	for f := range frames {
		raw := make([]uint8, rows*cols*3)
		for i := range rows * cols {
			r, c := i/cols, i%cols
			raw[3*i] = uint8(r*9 + f)                  // red: rises down the image
			raw[3*i+1] = uint8(c * 17 % 256 * (r % 2)) // green: stripes, runs of zeros
			raw[3*i+2] = uint8(200 - f*40)             // blue: constant, one long run
		}
		fr = append(fr, &frame.Frame{NativeData: &frame.NativeFrame[uint8]{InternalBitsPerSample: 8,
			InternalRows: rows, InternalCols: cols, InternalSamplesPerPixel: 3, RawData: raw}})
	}
	const sc = "1.2.840.10008.5.1.4.1.1.7.4" // Multi-frame True Color Secondary Capture
	sop := uidFor(path)
	elems := []*dicom.Element{
		mustElem(t, tag.MediaStorageSOPClassUID, []string{sc}),
		mustElem(t, tag.MediaStorageSOPInstanceUID, []string{sop}),
		mustElem(t, tag.TransferSyntaxUID, []string{ExplicitVRLittleEndian}),
		mustElem(t, tag.SOPClassUID, []string{sc}),
		mustElem(t, tag.SOPInstanceUID, []string{sop}),
		mustElem(t, tag.Modality, []string{"OT"}),
		mustElem(t, tag.SeriesInstanceUID, []string{sop + ".1"}),
		mustElem(t, tag.SamplesPerPixel, []int{3}),
		mustElem(t, tag.PhotometricInterpretation, []string{"RGB"}),
		mustElem(t, tag.PlanarConfiguration, []int{0}),
		mustElem(t, tag.NumberOfFrames, []string{strconv.Itoa(frames)}),
		mustElem(t, tag.Rows, []int{rows}),
		mustElem(t, tag.Columns, []int{cols}),
		mustElem(t, tag.BitsAllocated, []int{8}),
		mustElem(t, tag.BitsStored, []int{8}),
		mustElem(t, tag.HighBit, []int{7}),
		mustElem(t, tag.PixelRepresentation, []int{0}),
		mustElem(t, tag.PixelData, dicom.PixelDataInfo{Frames: fr}),
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dicom.Write(f, dicom.Dataset{Elements: elems}); err != nil {
		t.Fatal(err)
	}
}

// planarConfiguration reads (0028,0006) of a file; 0 when absent.
func planarConfiguration(t *testing.T, path string) int {
	t.Helper()
	ds, err := dicom.ParseFile(path, nil, dicom.SkipPixelData())
	if err != nil {
		t.Fatal(err)
	}
	e, err := ds.FindElementByTag(tag.PlanarConfiguration)
	if err != nil {
		return 0
	}
	return dicom.MustGetInts(e.Value)[0]
}

// byPixel turns one frame laid out colour by plane (RRR...GGG...BBB...) into colour by pixel.
func byPixel(plane []byte, samples int) []byte {
	n := len(plane) / samples
	out := make([]byte, len(plane))
	for s := range samples {
		for i := range n {
			out[i*samples+s] = plane[s*n+i]
		}
	}
	return out
}

// TestRLEColourMatchesDcmdrle compresses RGB phantoms (three samples per pixel, so three RLE
// segments per frame) with dcmcrle and checks that DecodeRLEFrame gives, byte for byte, the
// pixels dcmdrle gives. DecodeRLEFrame returns colour by pixel; when dcmdrle writes colour by
// plane (its PlanarConfiguration says which) its frames are re-interleaved before comparing.
func TestRLEColourMatchesDcmdrle(t *testing.T) {
	for _, tc := range []struct {
		name               string
		rows, cols, frames int
	}{
		{"rgb", 32, 32, 1},
		{"rgb odd width", 7, 13, 1},
		{"rgb multi-frame", 12, 9, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, rle, back := filepath.Join(dir, "src.dcm"), filepath.Join(dir, "rle.dcm"), filepath.Join(dir, "back.dcm")
			writeRGB(t, src, tc.rows, tc.cols, tc.frames)
			mustDcmtk(t, "dcmcrle", src, rle)
			mustDcmtk(t, "dcmdrle", rle, back)
			frameLen := tc.rows * tc.cols * 3
			want := pixelDataValue(t, back)[:frameLen*tc.frames] // odd lengths are padded to even
			if planarConfiguration(t, back) == 1 {
				var w []byte
				for f := range tc.frames {
					w = append(w, byPixel(want[f*frameLen:(f+1)*frameLen], 3)...)
				}
				want = w
			}
			ds, err := dicom.ParseFile(rle, nil)
			if err != nil {
				t.Fatal(err)
			}
			pd, err := ds.FindElementByTag(tag.PixelData)
			if err != nil {
				t.Fatal(err)
			}
			info := dicom.MustGetPixelDataInfo(pd.Value)
			if len(info.Frames) != tc.frames {
				t.Fatalf("%d fragments, want %d", len(info.Frames), tc.frames)
			}
			var got []byte
			for _, f := range info.Frames {
				dec, err := DecodeRLEFrame(f.EncapsulatedData.Data, tc.rows, tc.cols, 3, 8)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, dec...)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded %d bytes differ from dcmdrle's %d", len(got), len(want))
			}
			if orig := pixelDataValue(t, src)[:frameLen*tc.frames]; !bytes.Equal(got, orig) {
				t.Error("decoded pixels differ from the uncompressed original")
			}
		})
	}
}
