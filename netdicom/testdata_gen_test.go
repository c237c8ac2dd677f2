package netdicom

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteTestdata remakes testdata/mr_small_explicit.dcm (see testdata/README.md) when
// MIDLINE_WRITE_TESTDATA=1; otherwise it does nothing.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("MIDLINE_WRITE_TESTDATA") != "1" {
		t.Skip("set MIDLINE_WRITE_TESTDATA=1 to remake testdata/mr_small_explicit.dcm")
	}
	p := phantom{series: "2.25.1000001", n: 1, rows: 8, cols: 6, count: true}
	p.writeOne(t, "testdata/mr_small_explicit.dcm", 0)
}

// TestWriteFuzzSeeds remakes the named seed files of the fuzzers in testdata/fuzz (Go's corpus
// format) when MIDLINE_WRITE_TESTDATA=1: one valid PDU of each type, and the RLE fragment of
// testdata/mr_small_rle.dcm.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MIDLINE_WRITE_TESTDATA") != "1" {
		t.Skip("set MIDLINE_WRITE_TESTDATA=1 to remake the fuzz seeds")
	}
	names := []string{"associate-rq", "associate-ac", "p-data-c-store-rq", "associate-rj", "abort", "release-rq", "release-rp"}
	for i, b := range seedPDUs() {
		writeSeed(t, "FuzzPDU", "seed-"+names[i], fmt.Sprintf("[]byte(%q)", b))
	}
	b, err := os.ReadFile("testdata/mr_small_rle.dcm")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndex(b, []byte{0xFE, 0xFF, 0x00, 0xE0})
	n := int(binary.LittleEndian.Uint32(b[i+4:]))
	writeSeed(t, "FuzzDecodeRLE", "seed-mr-small-8x6", fmt.Sprintf("[]byte(%q)\nuint8(8)\nuint8(6)", b[i+8:i+8+n]))
}

func writeSeed(t *testing.T, fuzzer, name, body string) {
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n"+body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
