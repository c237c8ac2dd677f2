package contour

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/suyashkumar/dicom"

	"github.com/midline-rt/midline/netdicom"
)

// SourceText holds a source instance's Patient and Study text attributes exactly as encoded, so
// the RT Structure Set can carry them in the source's own character set: suyashkumar/dicom
// decodes text to UTF-8 and has no encoder back.
type SourceText struct {
	Charset []byte            // Specific Character Set's value bytes, empty when absent
	Values  map[uint32][]byte // group<<16 | element -> value bytes
}

// sourceTextTags are the top-level elements kept: Specific Character Set, General Study text
// and every Patient (group 0010) element.
func sourceTextTag(t uint32) bool {
	switch t {
	case 0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080090, 0x00081030, 0x0020000D, 0x00200010:
		return true
	}
	return t>>16 == 0x0010
}

// ReadSourceText reads those attributes of the Part 10 file at path (any transfer syntax
// netdicom accepts, deflated included), bounded like every reader of outside bytes.
func ReadSourceText(path string) (*SourceText, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	meta, err := netdicom.ReadFileMeta(f)
	if err != nil {
		return nil, fmt.Errorf("contour: %s: %w", path, err)
	}
	if _, err := f.Seek(meta.DataOffset, io.SeekStart); err != nil {
		return nil, err
	}
	raw, err := netdicom.ReadRawValues(bufio.NewReader(f), meta.TransferSyntax, sourceTextTag, 0x0020FFFF)
	if err != nil {
		return nil, fmt.Errorf("contour: %s: %w", path, err)
	}
	return &SourceText{Charset: raw[0x00080005], Values: raw}, nil
}

// copyRaw copies a source element, taking its text's bytes as encoded where it has any.
func (st *SourceText) copyRaw(e *dicom.Element) (*dicom.Element, error) {
	if e.RawValueRepresentation == "SQ" {
		// Items were decoded to UTF-8 and cannot be re-encoded: a sequence with text outside
		// ASCII (OtherPatientIDsSequence, rarely) is left out rather than written wrongly.
		if !asciiTree(e) {
			return nil, nil
		}
		return e, nil
	}
	if !charsetVRs[e.RawValueRepresentation] {
		return e, nil // dates, codes, UIDs and numbers read the same in any set
	}
	if st == nil {
		if asciiTree(e) {
			return e, nil // ASCII reads the same in every character set
		}
		return nil, fmt.Errorf("%w: no source bytes to copy %v from", ErrCharset, e.Tag)
	}
	b, ok := st.Values[uint32(e.Tag.Group)<<16|uint32(e.Tag.Element)]
	if !ok {
		return nil, fmt.Errorf("%w: %v not found in the source's bytes", ErrCharset, e.Tag)
	}
	c := *e
	// Trailing padding is the encoder's, not the value's; the writer pads again.
	v, err := dicom.NewValue([]string{strings.TrimRight(string(b), " \x00")})
	if err != nil {
		return nil, err
	}
	c.Value = v
	return &c, nil
}

// asciiTree reports whether every text value in e, items included, is ASCII.
func asciiTree(e *dicom.Element) bool {
	switch e.Value.ValueType() {
	case dicom.Strings:
		for _, v := range dicom.MustGetStrings(e.Value) {
			for i := 0; i < len(v); i++ {
				if v[i] >= 0x80 {
					return false
				}
			}
		}
	case dicom.Sequences:
		for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
			for _, x := range it.GetValue().([]*dicom.Element) {
				if !asciiTree(x) {
					return false
				}
			}
		}
	}
	return true
}
