package netdicom

import (
	"os"
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
