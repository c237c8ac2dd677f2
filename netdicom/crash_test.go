package netdicom

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestFailpointsThenRestart stops the store at each step between write and answer, as a crash
// would, then restarts on the same state folder: every instance the sender saw acknowledged is
// in the spool and complete, no temp file survives, and the series is released exactly once.
func TestFailpointsThenRestart(t *testing.T) {
	p := phantom{series: uidFor(t.Name()), n: 5, rows: 32, cols: 32}
	files := p.write(t, t.TempDir())
	for _, step := range []string{FailAfterWrite, FailAfterFsync, FailAfterRename, FailAfterDirSync, FailBeforeReply} {
		t.Run(step, func(t *testing.T) {
			state := t.TempDir()
			var n atomic.Int32
			fp := func(s string) error {
				if s == step && n.Add(1) == 3 {
					return ErrFailpoint
				}
				return nil
			}
			ts := startServer(t, Options{StateDir: state, Failpoint: fp, SeriesTimeout: time.Hour})
			res, err := SendFiles(context.Background(), ts.addr, ClientOptions{CalledAE: "MIDLINE", Timeout: 10 * time.Second}, files)
			if err == nil {
				t.Fatalf("the association survived a failpoint: %+v", res)
			}
			ts.stop()
			var acked []int
			for i, r := range res {
				if r.Err == nil && r.Status == StatusSuccess {
					acked = append(acked, i)
				}
			}
			if len(acked) != 2 {
				t.Fatalf("acknowledged %v, want the first two", acked)
			}
			var evs []SeriesEvent
			re := startServer(t, Options{StateDir: state, SeriesTimeout: 50 * time.Millisecond, OnSeries: func(ev SeriesEvent) { evs = append(evs, ev) }})
			for _, i := range acked {
				got := re.storedPath(p.series, p.instanceUID(i))
				if !bytes.Equal(dataSetBytes(t, got), dataSetBytes(t, files[i])) {
					t.Errorf("acknowledged instance %d incomplete after restart", i)
				}
			}
			if tmp, _ := os.ReadDir(filepath.Join(state, "spool", spoolTmp)); len(tmp) != 0 {
				t.Errorf("temp files survived the restart: %v", tmp)
			}
			ev := waitEvent(t, re)
			if ev.Reason != ReadyRestart || len(ev.Paths) < 2 {
				t.Errorf("after restart: %+v", ev)
			}
			if err := re.MarkProcessed(ev); err != nil {
				t.Fatal(err)
			}
			re.stop()
			again := startServer(t, Options{StateDir: state, SeriesTimeout: 10 * time.Millisecond})
			time.Sleep(100 * time.Millisecond)
			again.stop()
			if evs := again.events(); len(evs) != 0 {
				t.Errorf("a processed series was released again after a second restart: %+v", evs)
			}
		})
	}
}

// waitEvent waits (bounded) for the first series event of a test server.
func waitEvent(t *testing.T, ts *testServer) SeriesEvent {
	t.Helper()
	for range 200 {
		if evs := ts.events(); len(evs) > 0 {
			return evs[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no series event within 4 s")
	return SeriesEvent{}
}
