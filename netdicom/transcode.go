package netdicom

import (
	"bytes"
	"fmt"
	"os"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// uncompressedFallback is proposed beside each file's own transfer syntax, so that a peer that
// refuses it can still be sent a transcoded copy.
var uncompressedFallback = []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}

// transcodable reports whether Midline can re-encode a data set from ts (it cannot compress or
// decompress pixel data for sending).
func transcodable(ts string) bool {
	t, ok := lookupTransferSyntax(ts)
	return ok && !t.rle
}

// transcode re-encodes a Part 10 file's data set in transfer syntax to (Implicit or Explicit VR
// Little Endian) with github.com/suyashkumar/dicom, and checks the result still names the same
// SOP instance. The whole data set is held in memory: this is the fallback path only.
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
