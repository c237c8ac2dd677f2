package netdicom

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestReadHeadEveryTransferSyntax(t *testing.T) {
	want := HeadInfo{SOPClassUID: MRImageStorageUID, SOPInstanceUID: "2.25.1000001.1", StudyInstanceUID: "2.25.1000001.0",
		SeriesInstanceUID: "2.25.1000001", Modality: "MR", InstanceNumber: 1, ImagesInAcquisition: 1}
	for _, name := range []string{"explicit", "implicit", "big", "deflated", "rle"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "mr_small_"+name+".dcm"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := ReadFileMeta(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(m.DataOffset, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got, err := ReadHead(f, m.TransferSyntax)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("ReadHead = %+v, want %+v", got, want)
			}
		})
	}
}

func TestReadHeadRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		ts   string
	}{
		{"truncated tag", []byte{0x08, 0x00, 0x16}, ExplicitVRLittleEndian},
		{"length beyond data", []byte{0x08, 0x00, 0x16, 0x00, 'U', 'I', 0x40, 0x00, '1'}, ExplicitVRLittleEndian},
		{"bad VR", []byte{0x08, 0x00, 0x16, 0x00, 0x01, 0x02, 0x02, 0x00, '1', 0}, ExplicitVRLittleEndian},
		{"huge wanted value", []byte{0x08, 0x00, 0x18, 0x00, 0xff, 0xff, 0xff, 0x0f}, ImplicitVRLittleEndian},
		{"unknown syntax", nil, "1.2.840.10008.1.2.4.50"},
		{"bad deflate", []byte{0xff, 0xff, 0xff}, DeflatedExplicitVRLE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadHead(bytes.NewReader(tc.data), tc.ts); err == nil {
				t.Error("ReadHead accepted it")
			}
		})
	}
}

func TestFileMetaRoundTrip(t *testing.T) {
	in := FileMeta{SOPClassUID: MRImageStorageUID, SOPInstanceUID: "1.2.3.45", TransferSyntax: RLELossless, SourceAE: "SCANNER"}
	b := appendFileMeta(nil, in)
	got, err := ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	in.DataOffset = int64(len(b))
	if got != in {
		t.Errorf("ReadFileMeta = %+v, want %+v", got, in)
	}
}

// TestReadHeadStopsInflatingABomb deflates a data set whose first element is 128 MiB of zeros,
// followed by a valid SOP Class UID: without the inflation limit ReadHead would inflate it all
// and find the UID; with it, it stops and reports the data set unreadable.
func TestReadHeadStopsInflatingABomb(t *testing.T) {
	var raw bytes.Buffer
	w, _ := flate.NewWriter(&raw, flate.BestSpeed)
	const n = 128 << 20
	w.Write([]byte{0x07, 0x00, 0x10, 0x00, 'O', 'B', 0, 0, 0, 0, 0, n >> 24}) // (0007,0010) OB, 128 MiB
	zeros := make([]byte, 1<<20)
	for range n >> 20 {
		w.Write(zeros)
	}
	w.Write([]byte{0x08, 0x00, 0x16, 0x00, 'U', 'I', 4, 0, '1', '.', '2', 0})
	w.Close()
	head, err := ReadHead(bytes.NewReader(raw.Bytes()), DeflatedExplicitVRLE)
	if err == nil || head.SOPClassUID != "" {
		t.Fatalf("ReadHead inflated past its limit: %+v, %v", head, err)
	}
}
