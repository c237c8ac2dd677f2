package netdicom

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// writeFrames writes a multi-frame grayscale phantom of the given size and bit depth.
func writeFrames(t *testing.T, path string, rows, cols, frames, bits int) {
	writeFramesOf(t, path, MRImageStorageUID, rows, cols, frames, bits)
}

// writeFramesOf writes the multi-frame phantom as an instance of sopClass; its series UID is
// its SOP Instance UID + ".1".
func writeFramesOf(t *testing.T, path, sopClass string, rows, cols, frames, bits int) {
	t.Helper()
	var fr []*frame.Frame
	for f := range frames {
		n := rows * cols
		if bits == 8 {
			raw := make([]uint8, n)
			for i := range raw {
				raw[i] = uint8((i*31 + f*7) % 251 * ((i / cols) % 3 / 2))
			}
			fr = append(fr, &frame.Frame{NativeData: &frame.NativeFrame[uint8]{InternalBitsPerSample: 8, InternalRows: rows, InternalCols: cols, InternalSamplesPerPixel: 1, RawData: raw}})
		} else {
			raw := make([]uint16, n)
			for i := range raw {
				if (i/cols+f)%4 != 0 {
					raw[i] = uint16(i*977 + f*13)
				}
			}
			fr = append(fr, &frame.Frame{NativeData: &frame.NativeFrame[uint16]{InternalBitsPerSample: 16, InternalRows: rows, InternalCols: cols, InternalSamplesPerPixel: 1, RawData: raw}})
		}
	}
	sop := uidFor(path)
	elems := []*dicom.Element{
		mustElem(t, tag.MediaStorageSOPClassUID, []string{sopClass}),
		mustElem(t, tag.MediaStorageSOPInstanceUID, []string{sop}),
		mustElem(t, tag.TransferSyntaxUID, []string{ExplicitVRLittleEndian}),
		mustElem(t, tag.SOPClassUID, []string{sopClass}),
		mustElem(t, tag.SOPInstanceUID, []string{sop}),
		mustElem(t, tag.Modality, []string{"MR"}),
		mustElem(t, tag.SeriesInstanceUID, []string{sop + ".1"}),
		mustElem(t, tag.SamplesPerPixel, []int{1}),
		mustElem(t, tag.PhotometricInterpretation, []string{"MONOCHROME2"}),
		mustElem(t, tag.NumberOfFrames, []string{fmt.Sprint(frames)}),
		mustElem(t, tag.Rows, []int{rows}),
		mustElem(t, tag.Columns, []int{cols}),
		mustElem(t, tag.BitsAllocated, []int{bits}),
		mustElem(t, tag.BitsStored, []int{bits}),
		mustElem(t, tag.HighBit, []int{bits - 1}),
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

// pixelDataValue returns the value of the last (7FE0,0010) in an Explicit VR Little Endian file.
func pixelDataValue(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, vr := range []string{"OW", "OB"} {
		i := bytes.LastIndex(b, append([]byte{0xE0, 0x7F, 0x10, 0x00}, vr...))
		if i >= 0 {
			n := int(binary.LittleEndian.Uint32(b[i+8:]))
			return b[i+12 : i+12+n]
		}
	}
	t.Fatalf("%s: no native pixel data", path)
	return nil
}

// TestRLEMatchesDcmdrle compresses phantoms with dcmcrle and checks that DecodeRLEFrame gives,
// byte for byte, what dcmdrle gives.
func TestRLEMatchesDcmdrle(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		rows, cols, frames, bits int
	}{
		{"16-bit", 64, 64, 1, 16},
		{"16-bit odd width", 33, 17, 1, 16},
		{"8-bit odd width", 9, 7, 1, 8},
		{"multi-frame 16-bit", 20, 31, 5, 16},
		{"multi-frame 8-bit", 16, 16, 3, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src, rle, back := filepath.Join(dir, "src.dcm"), filepath.Join(dir, "rle.dcm"), filepath.Join(dir, "back.dcm")
			writeFrames(t, src, tc.rows, tc.cols, tc.frames, tc.bits)
			mustDcmtk(t, "dcmcrle", src, rle)
			mustDcmtk(t, "dcmdrle", rle, back)
			want := pixelDataValue(t, back)
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
				dec, err := DecodeRLEFrame(f.EncapsulatedData.Data, tc.rows, tc.cols, 1, tc.bits)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, dec...)
			}
			if len(want) > len(got) && len(want) == len(got)+1 {
				want = want[:len(got)] // odd-length native pixel data is padded to even
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded %d bytes differ from dcmdrle's %d", len(got), len(want))
			}
		})
	}
}

func FuzzDecodeRLE(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 64, 0, 0, 0}, uint8(4), uint8(4))
	f.Fuzz(func(t *testing.T, frag []byte, rows, cols uint8) {
		if len(frag) >= 64 {
			DecodeRLEFrame(frag, int(rows), int(cols), 1, 16)
			DecodeRLEFrame(frag, int(rows), int(cols), 1, 8)
		}
	})
}

func TestDecodeRLERefusesFramesTheFragmentCannotHold(t *testing.T) {
	frag := make([]byte, 64+4)
	frag[0], frag[4] = 2, 64 // two segments, the first at offset 64
	frag[8] = 66
	if _, err := DecodeRLEFrame(frag, 65535, 65535, 1, 16); err == nil {
		t.Error("a 65535x65535 frame from a 68-byte fragment was accepted")
	}
}
