package preproc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadInstance feeds one file to the series loader: any error is fine, a panic or an
// allocation beyond the limits is not. Seeds: every committed instance (five transfer
// syntaxes), a small Enhanced MR multi-frame instance and a phantom slice.
func FuzzLoadInstance(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/instances/*.dcm")
	seeds = append(seeds, filepath.Join("testdata", "seeds", "enhanced_small.dcm"))
	seeds = append(seeds, filepath.Join(phantomDir, "T2", "IM0001.dcm"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	lim := Limits{MaxFileBytes: 1 << 20, MaxMatrix: 256, MaxSlices: 16, MaxVoxels: 1 << 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "fuzz.dcm")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := LoadSeries(context.Background(), []string{p}, Options{Limits: lim, MinSlices: 1})
		if err == nil && len(v.Pixels) != v.Rows*v.Cols*v.Slices() {
			t.Fatalf("volume of %d voxels for %s", len(v.Pixels), v.Geometry.String())
		}
	})
}
