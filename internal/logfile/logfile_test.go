package logfile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestDailyFilesAndRetention: lines go to their UTC day's file, a restart appends, and files
// whose day ended more than the retention ago go (others' files stay).
func TestDailyFilesAndRetention(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "midline-2026-10-01.log"), []byte("old\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not ours\n"), 0o640)
	now := time.Date(2026, 11, 28, 23, 59, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, err := Open(dir, 72*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("a\n"))
	now = now.Add(2 * time.Minute) // the next day
	w.Write([]byte("b\n"))
	w.Close()
	w, _ = Open(dir, 72*time.Hour, clock) // a restart on the same day appends
	w.Write([]byte("c\n"))
	if got, want := names(t, dir), []string{"midline-2026-11-28.log", "midline-2026-11-29.log", "notes.txt"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v (the October file is past the retention)", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "midline-2026-11-29.log")); string(b) != "b\nc\n" {
		t.Fatalf("the 29th holds %q", b)
	}
	now = now.Add(4 * 24 * time.Hour)
	w.Write([]byte("d\n"))
	w.Close()
	if got, want := names(t, dir), []string{"midline-2026-12-03.log", "notes.txt"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
}

// TestDayFileIsBounded: past MaxDayBytes a day's file takes one note and nothing more; the
// writer still reports every line written (the journal has them).
func TestDayFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	clock := func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	w, err := Open(dir, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := []byte(strings.Repeat("x", 1<<20-1) + "\n")
	for range 70 {
		if n, err := w.Write(line); n != len(line) || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, "midline-2026-11-28.log"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > MaxDayBytes+200 || info.Size() < MaxDayBytes-(1<<20) {
		t.Fatalf("day file of %d bytes, bound %d", info.Size(), MaxDayBytes)
	}
}
