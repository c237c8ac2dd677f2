package netdicom

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPruneRemovesOnlyOldProcessedSeries stores two series, marks one processed, and prunes.
func TestPruneRemovesOnlyOldProcessedSeries(t *testing.T) {
	ts := startServer(t, Options{SeriesTimeout: 20 * time.Millisecond})
	a := phantom{series: uidFor("prune-a"), n: 2, rows: 8, cols: 8}
	b := phantom{series: uidFor("prune-b"), n: 2, rows: 8, cols: 8}
	for _, p := range []phantom{a, b} {
		if _, err := SendFiles(context.Background(), ts.addr, ClientOptions{CalledAE: "MIDLINE"}, p.write(t, t.TempDir())); err != nil {
			t.Fatal(err)
		}
	}
	var evA SeriesEvent
	for range 200 {
		for _, ev := range ts.events() {
			if ev.SeriesUID == a.series {
				evA = ev
			}
		}
		if evA.SeriesUID != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ts.MarkProcessed(evA); err != nil {
		t.Fatal(err)
	}
	if removed, _ := ts.Prune(time.Hour); len(removed) != 0 {
		t.Fatalf("pruned fresh series %v", removed)
	}
	removed, err := ts.Spool().Prune(time.Now().Add(2*time.Hour), time.Hour)
	if err != nil || len(removed) != 1 || removed[0] != a.series {
		t.Fatalf("Prune = %v, %v; want only the processed series", removed, err)
	}
	if _, err := os.Stat(filepath.Join(ts.dir, "spool", spoolSeries, a.series)); !os.IsNotExist(err) {
		t.Errorf("processed series folder still there: %v", err)
	}
	if _, err := os.Stat(ts.storedPath(b.series, b.instanceUID(0))); err != nil {
		t.Errorf("unprocessed series pruned: %v", err)
	}
}

func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("midline"), 20000) // longer than one comparison chunk
	flipped := bytes.Clone(big)
	flipped[len(flipped)-1] ^= 1
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tmp := write("tmp", big)
	for _, tc := range []struct {
		name string
		path string
		want bool
	}{
		{"identical", write("same", big), true},
		{"last byte differs", write("flipped", flipped), false},
		{"shorter", write("short", big[:100]), false},
		{"missing", filepath.Join(dir, "none"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := sameContent(tmp, tc.path); got != tc.want || err != nil {
				t.Errorf("sameContent = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
