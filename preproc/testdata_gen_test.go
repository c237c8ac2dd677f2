package preproc

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteTestdata regenerates the committed fuzz seed testdata/seeds/enhanced_small.dcm when
// MIDLINE_WRITE_TESTDATA=1 (see testdata/README.md).
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("MIDLINE_WRITE_TESTDATA") != "1" {
		t.Skip("set MIDLINE_WRITE_TESTDATA=1 to rewrite testdata/seeds")
	}
	s := defaultSynth()
	s.rows, s.cols, s.n = 6, 5, 3
	if err := os.MkdirAll("testdata/seeds", 0o755); err != nil {
		t.Fatal(err)
	}
	writeEnhanced(t, filepath.Join("testdata", "seeds", "enhanced_small.dcm"), s, []int{2, 0, 1})
}
