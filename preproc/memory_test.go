package preproc

import (
	"context"
	"runtime"
	"testing"
)

// Loading a 512x512x8 series allocates the float32 volume and little else: headers are
// parsed without pixel data and frames are read one at a time into the volume.
func TestLoadSeriesMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4 MB of files")
	}
	s := defaultSynth()
	s.rows, s.cols, s.n = 512, 512, 8
	s.value = func(i, r, c int) uint16 { return uint16(r ^ c + i) }
	paths := s.write(t, t.TempDir())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v, err := LoadSeries(context.Background(), paths, Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	volume := uint64(4 * len(v.Pixels))
	extra := after.TotalAlloc - before.TotalAlloc - volume
	t.Logf("volume %d MB, other allocations %.1f MB", volume>>20, float64(extra)/(1<<20))
	// One raw frame buffer (512 KB), bufio readers and headers: a few MB, not a second volume.
	if extra > volume/4 {
		t.Errorf("allocated %d bytes beyond the %d-byte volume", extra, volume)
	}
}
