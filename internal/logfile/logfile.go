// Package logfile keeps the daemon's log in daily files (state_dir/logs/midline-YYYY-MM-DD.log,
// UTC days) beside the journal, which on a board is often kept in memory only and lost at a
// reboot, and removes the files older than retention.logs.
package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MaxDayBytes bounds one day's file, so that a logging storm cannot fill the state folder; the
// rest of that day's lines go to the other writers only, after one note in the file.
const MaxDayBytes = 64 << 20

const prefix, suffix, dayLayout = "midline-", ".log", "2006-01-02"

// Writer appends log lines to the current day's file. Safe for concurrent use.
type Writer struct {
	dir  string
	keep time.Duration // 0 keeps every file
	now  func() time.Time

	mu   sync.Mutex
	day  string
	f    *os.File
	size int64
	full bool
}

// Open makes dir if needed and removes the files older than keep (0 keeps them all); now is
// the clock (time.Now outside tests).
func Open(dir string, keep time.Duration, now func() time.Time) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	w := &Writer{dir: dir, keep: keep, now: now}
	w.prune(now().UTC())
	return w, nil
}

// Write appends p, one or more whole lines, to today's file.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now().UTC()
	if day := now.Format(dayLayout); day != w.day {
		if err := w.rotate(day, now); err != nil {
			return 0, err
		}
	}
	if w.size+int64(len(p)) > MaxDayBytes {
		if !w.full {
			w.full = true
			note := fmt.Sprintf("%s logfile: this day's file reached %d bytes; later lines are in the journal only\n", now.Format(time.RFC3339), MaxDayBytes)
			w.f.WriteString(note)
		}
		return len(p), nil
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

// rotate closes the previous day's file, opens day's and prunes.
func (w *Writer) rotate(day string, now time.Time) error {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	f, err := os.OpenFile(filepath.Join(w.dir, prefix+day+suffix), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("logfile: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logfile: %w", err)
	}
	w.f, w.day, w.size, w.full = f, day, info.Size(), info.Size() >= MaxDayBytes
	w.prune(now)
	return nil
}

// prune removes the day files whose whole day ended more than keep ago.
func (w *Writer) prune(now time.Time) {
	if w.keep <= 0 {
		return
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) {
			continue
		}
		day, err := time.Parse(dayLayout, strings.TrimSuffix(strings.TrimPrefix(name, prefix), suffix))
		if err != nil {
			continue
		}
		if now.Sub(day.Add(24*time.Hour)) > w.keep {
			os.Remove(filepath.Join(w.dir, name))
		}
	}
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f, w.day = nil, ""
	return err
}
