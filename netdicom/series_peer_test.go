package netdicom

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
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

// TestSendDecodesRLEForUncompressedPeer sends RLE Lossless files (16-bit grayscale multi-frame,
// and 8-bit RGB with three segments per frame) to storescp instances that accept only uncompressed
// syntaxes: our SCU decodes the frames and sends them uncompressed, and storescp's copy holds the
// data set of the uncompressed original that dcmcrle compressed (compared after dcmconv).
func TestSendDecodesRLEForUncompressedPeer(t *testing.T) {
	dir := t.TempDir()
	mr, mrRLE := filepath.Join(dir, "mr.dcm"), filepath.Join(dir, "mr_rle.dcm")
	writeFrames(t, mr, 33, 17, 2, 16) // odd width, two frames, values in both bytes
	mustDcmtk(t, "dcmcrle", mr, mrRLE)
	rgb, rgbRLE := filepath.Join(dir, "rgb.dcm"), filepath.Join(dir, "rgb_rle.dcm")
	writeRGB(t, rgb, 7, 13, 2)
	mustDcmtk(t, "dcmcrle", rgb, rgbRLE)
	for _, tc := range []struct {
		name, peer, original, sent, wantTS string
	}{
		{"mr 16-bit to explicit or implicit", "+x=", mr, mrRLE, ExplicitVRLittleEndian},
		{"rgb to implicit only", "+xi", rgb, rgbRLE, ImplicitVRLittleEndian},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, dir := startStorescp(t, tc.peer)
			res, err := SendFiles(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"}, []string{tc.sent})
			if err != nil || res[0].Err != nil {
				t.Fatalf("%v %+v", err, res)
			}
			got, err := filepath.Glob(filepath.Join(dir, "*"))
			if err != nil || len(got) != 1 {
				t.Fatalf("storescp stored %v", got)
			}
			if ts := fileMeta(t, got[0]).TransferSyntax; ts != tc.wantTS {
				t.Errorf("arrived in %s, want %s", ts, tc.wantTS)
			}
			sameDataSet(t, tc.original, got[0], false)
		})
	}
}

// TestSendReportsUndecodableSyntax sends a JPEG Lossless file (made by dcmcjpeg) to a storescp
// that accepts only uncompressed syntaxes: Midline cannot decompress it, so that file fails with
// ErrNoContext and a message saying why, and the next file of the association still goes.
func TestSendReportsUndecodableSyntax(t *testing.T) {
	jpeg := filepath.Join(t.TempDir(), "jpeg.dcm")
	mustDcmtk(t, "dcmcjpeg", "+e1", "testdata/mr_small_explicit.dcm", jpeg)
	port, _ := startStorescp(t, "+x=")
	res, err := SendFiles(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"},
		[]string{jpeg, "testdata/mr_small_explicit.dcm"})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrNoContext) || !strings.Contains(res[0].Err.Error(), "cannot decompress") || res[1].Err != nil {
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
