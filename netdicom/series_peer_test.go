package netdicom

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// waitEvents waits (bounded) until a test server has reported n series events.
func waitEvents(t *testing.T, ts *testServer, n int) []SeriesEvent {
	t.Helper()
	for range 300 {
		if evs := ts.events(); len(evs) >= n {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("only %d of %d series events within 6 s: %+v", len(ts.events()), n, ts.events())
	return nil
}

// TestSeriesSignalsWithStorescu checks each early signal end to end with storescu as the sender,
// then the late-instance rule.
func TestSeriesSignalsWithStorescu(t *testing.T) {
	send := func(ts *testServer, files ...string) {
		mustDcmtk(t, "storescu", append([]string{"-aec", "MIDLINE", "127.0.0.1", ts.port}, files...)...)
	}
	t.Run("count hint", func(t *testing.T) {
		ts := startServer(t, Options{SeriesTimeout: time.Hour, ReleaseGrace: time.Hour})
		p := phantom{series: uidFor(t.Name()), n: 4, rows: 8, cols: 8, count: true}
		send(ts, p.write(t, t.TempDir())...)
		if ev := waitEvents(t, ts, 1)[0]; ev.Reason != ReadyCount || len(ev.Paths) != 4 {
			t.Errorf("event %+v", ev)
		}
	})
	t.Run("release hint", func(t *testing.T) {
		ts := startServer(t, Options{SeriesTimeout: time.Hour, ReleaseGrace: 50 * time.Millisecond})
		p := phantom{series: uidFor(t.Name()), n: 4, rows: 8, cols: 8}
		send(ts, p.write(t, t.TempDir())...)
		if ev := waitEvents(t, ts, 1)[0]; ev.Reason != ReadyRelease || len(ev.Paths) != 4 {
			t.Errorf("event %+v", ev)
		}
	})
	t.Run("one Enhanced MR instance", func(t *testing.T) {
		ts := startServer(t, Options{SeriesTimeout: time.Hour, ReleaseGrace: 50 * time.Millisecond})
		path := filepath.Join(t.TempDir(), "enhanced.dcm")
		writeFramesOf(t, path, EnhancedMRStorageUID, 16, 16, 12, 16)
		send(ts, path)
		ev := waitEvents(t, ts, 1)[0]
		if ev.Reason != ReadyRelease || len(ev.Paths) != 1 || fileMeta(t, ev.Paths[0]).SOPClassUID != EnhancedMRStorageUID {
			t.Errorf("event %+v", ev)
		}
	})
	t.Run("late instance", func(t *testing.T) {
		ts := startServer(t, Options{SeriesTimeout: time.Hour, ReleaseGrace: 20 * time.Millisecond})
		p := phantom{series: uidFor(t.Name()), n: 6, rows: 8, cols: 8}
		files := p.write(t, t.TempDir())
		send(ts, files[:4]...)
		first := waitEvents(t, ts, 1)[0]
		if err := ts.MarkProcessed(first); err != nil {
			t.Fatal(err)
		}
		send(ts, files[4:]...)
		evs := waitEvents(t, ts, 3)
		if evs[1].Kind != SeriesReopened || evs[2].Kind != SeriesReady || evs[2].Generation != 2 || evs[2].Supersedes != 1 || len(evs[2].Paths) != 6 {
			t.Errorf("events after a late instance: %+v", evs)
		}
		send(ts, files[4:]...) // an identical re-send changes nothing
		time.Sleep(200 * time.Millisecond)
		if n := len(ts.events()); n != 3 {
			t.Errorf("identical re-send made %d more events", n-3)
		}
	})
}

// TestSendReportsUnacceptedSyntax sends an RLE file to a storescp that accepts only uncompressed
// syntaxes: the file fails with ErrNoContext, the others go through.
func TestSendReportsUnacceptedSyntax(t *testing.T) {
	port, _ := startStorescp(t, "+x=")
	res, err := SendFiles(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"},
		[]string{"testdata/mr_small_rle.dcm", "testdata/mr_small_explicit.dcm"})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrNoContext) || res[1].Err != nil {
		t.Errorf("results %+v", res)
	}
}

// TestSendTranscodesForImplicitOnlyPeer sends explicit, big endian and deflated files to a
// storescp that accepts Implicit VR Little Endian only: our SCU transcodes each, and storescp's
// copy holds the same data set (compared after dcmconv).
func TestSendTranscodesForImplicitOnlyPeer(t *testing.T) {
	port, dir := startStorescp(t, "+xi")
	files := []string{"testdata/mr_small_explicit.dcm", "testdata/mr_small_big.dcm", "testdata/mr_small_deflated.dcm"}
	for _, f := range files {
		res, err := SendFiles(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"}, []string{f})
		if err != nil || res[0].Err != nil {
			t.Fatalf("%s: %v %+v", f, err, res)
		}
		got := dir + "/MR.2.25.1000001.1"
		if ts := fileMeta(t, got).TransferSyntax; ts != ImplicitVRLittleEndian {
			t.Errorf("%s arrived in %s", f, ts)
		}
		sameDataSet(t, f, got, false)
	}
}
