package netdicom

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/frame"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// uncompressedFallback is proposed beside each file's own transfer syntax, so that a peer that
// refuses it can still be sent a transcoded copy.
var uncompressedFallback = []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}

// transcodable reports whether Midline can re-encode a data set from ts into an uncompressed
// syntax: every syntax the receiver accepts, RLE Lossless by decoding its frames (it cannot
// compress, nor decompress any other encapsulated syntax).
func transcodable(ts string) bool {
	_, ok := lookupTransferSyntax(ts)
	return ok
}

// transcode re-encodes a Part 10 file's data set in transfer syntax to (Implicit or Explicit VR
// Little Endian) with github.com/suyashkumar/dicom, decoding RLE Lossless pixel data, and checks
// the result still names the same SOP instance. The whole data set is held in memory: this is
// the fallback path only.
func transcode(path, to string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ds, err := dicom.Parse(f, st.Size(), nil)
	if err != nil {
		return nil, fmt.Errorf("netdicom: transcode %s: parse: %w", path, err)
	}
	e, err := ds.FindElementByTag(tag.TransferSyntaxUID)
	if err != nil {
		return nil, fmt.Errorf("netdicom: transcode %s: %w", path, err)
	}
	if from := dicom.MustGetStrings(e.Value); len(from) == 1 && from[0] == RLELossless {
		if err := decodeRLEPixelData(&ds); err != nil {
			return nil, fmt.Errorf("netdicom: transcode %s: %w", path, err)
		}
	}
	if e.Value, err = dicom.NewValue([]string{to}); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds, dicom.SkipVRVerification(), dicom.SkipValueTypeVerification()); err != nil {
		return nil, fmt.Errorf("netdicom: transcode %s: write: %w", path, err)
	}
	out := buf.Bytes()
	m, err := ReadFileMeta(bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("netdicom: transcode %s: %w", path, err)
	}
	data := out[m.DataOffset:]
	head, err := ReadHead(bytes.NewReader(data), to)
	if err != nil || head.SOPInstanceUID != m.SOPInstanceUID {
		return nil, fmt.Errorf("netdicom: transcode %s: result unreadable or names another instance (%v)", path, err)
	}
	return data, nil
}

// decodeRLEPixelData replaces a data set's RLE Lossless pixel data (one fragment per frame) by
// the native frames DecodeRLEFrame gives, and says so in PlanarConfiguration (colour by pixel).
func decodeRLEPixelData(ds *dicom.Dataset) error {
	pd, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		return nil // no pixels: nothing is compressed
	}
	info := dicom.MustGetPixelDataInfo(pd.Value)
	g, err := rleGeometry(ds)
	if err != nil {
		return err
	}
	if !info.IsEncapsulated || len(info.Frames) != g.frames {
		return fmt.Errorf("RLE pixel data holds %d fragments for %d frames", len(info.Frames), g.frames)
	}
	native := make([]*frame.Frame, len(info.Frames))
	for i, fr := range info.Frames {
		raw, err := DecodeRLEFrame(fr.EncapsulatedData.Data, g.rows, g.cols, g.samples, g.bits)
		if err != nil {
			return fmt.Errorf("frame %d: %w", i+1, err)
		}
		native[i] = nativeFrame(raw, g)
	}
	vr := "OW"
	if g.bits == 8 {
		vr = "OB"
	}
	pd.RawValueRepresentation, pd.ValueLength = vr, 0
	if pd.Value, err = dicom.NewValue(dicom.PixelDataInfo{Frames: native}); err != nil {
		return err
	}
	if g.samples > 1 {
		if pc, err := ds.FindElementByTag(tag.PlanarConfiguration); err == nil {
			pc.Value, _ = dicom.NewValue([]int{0})
		}
	}
	return nil
}

// frameGeometry is what decoding a frame needs from the data set.
type frameGeometry struct{ rows, cols, samples, bits, frames int }

func rleGeometry(ds *dicom.Dataset) (frameGeometry, error) {
	g := frameGeometry{samples: 1, frames: 1}
	for _, v := range []struct {
		t   tag.Tag
		dst *int
	}{{tag.Rows, &g.rows}, {tag.Columns, &g.cols}, {tag.BitsAllocated, &g.bits}, {tag.SamplesPerPixel, &g.samples}} {
		e, err := ds.FindElementByTag(v.t)
		if err != nil {
			if v.t == tag.SamplesPerPixel {
				continue
			}
			return g, fmt.Errorf("RLE pixel data without %v", v.t)
		}
		if ints, ok := e.Value.GetValue().([]int); ok && len(ints) == 1 {
			*v.dst = ints[0]
		}
	}
	if e, err := ds.FindElementByTag(tag.NumberOfFrames); err == nil {
		if s, ok := e.Value.GetValue().([]string); ok && len(s) == 1 {
			n, err := strconv.Atoi(s[0])
			if err != nil || n < 1 {
				return g, fmt.Errorf("NumberOfFrames %q", s[0])
			}
			g.frames = n
		}
	}
	if g.bits != 8 && g.bits != 16 {
		return g, fmt.Errorf("RLE pixel data of %d bits allocated: only 8 and 16 are sent decoded", g.bits)
	}
	return g, nil
}

// nativeFrame wraps decoded little-endian bytes as the frame suyashkumar/dicom writes.
func nativeFrame(raw []byte, g frameGeometry) *frame.Frame {
	if g.bits == 8 {
		return &frame.Frame{NativeData: &frame.NativeFrame[uint8]{InternalBitsPerSample: 8, InternalRows: g.rows,
			InternalCols: g.cols, InternalSamplesPerPixel: g.samples, RawData: raw}}
	}
	words := make([]uint16, len(raw)/2)
	for i := range words {
		words[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	return &frame.Frame{NativeData: &frame.NativeFrame[uint16]{InternalBitsPerSample: 16, InternalRows: g.rows,
		InternalCols: g.cols, InternalSamplesPerPixel: g.samples, RawData: words}}
}
