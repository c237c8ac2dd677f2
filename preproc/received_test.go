package preproc

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/netdicom/netdicomtest"
)

// From the network to a volume: dcmtk's storescu sends a series, in the transfer syntax it
// proposes, to netdicom's receiver; the SeriesEvent's spool paths load to the same voxels as
// the files sent.
func TestLoadReceivedSeries(t *testing.T) {
	storescu := testenv.Require(t, "storescu")
	testenv.Require(t, "dcmcrle")
	testenv.Require(t, "dcmconv")
	synthFiles := defaultSynth().write(t, t.TempDir())
	rle := filepath.Join(t.TempDir(), "rle")
	os.Mkdir(rle, 0o755)
	for _, f := range synthFiles {
		if b, err := exec.Command("dcmcrle", f, filepath.Join(rle, filepath.Base(f))).CombinedOutput(); err != nil {
			t.Fatalf("dcmcrle: %v\n%s", err, b)
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	os.Mkdir(big, 0o755)
	for _, f := range phantomPaths(t, "FLAIR") {
		// storescu proposes big endian first for files that are big endian.
		if b, err := exec.Command("dcmconv", "+tb", f, filepath.Join(big, filepath.Base(f))).CombinedOutput(); err != nil {
			t.Fatalf("dcmconv: %v\n%s", err, b)
		}
	}
	for _, tc := range []struct {
		name  string
		files []string
		flags []string
		ts    string
	}{
		{"phantom T2, explicit little endian", phantomPaths(t, "T2"), []string{"-xe"}, netdicom.ExplicitVRLittleEndian},
		{"phantom FLAIR, big endian", mustGlob(t, filepath.Join(big, "*.dcm")), []string{"-xb"}, netdicom.ExplicitVRBigEndian},
		{"phantom T1C, deflated", phantomPaths(t, "T1C"), []string{"-xd"}, netdicom.DeflatedExplicitVRLE},
		{"synthetic, RLE", mustGlob(t, filepath.Join(rle, "*.dcm")), []string{"-xr"}, netdicom.RLELossless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := receive(t, storescu, tc.flags, tc.files)
			got, err := LoadSeries(context.Background(), ev.Paths, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := LoadSeries(context.Background(), tc.files, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Header.TransferSyntaxUID != tc.ts {
				t.Errorf("received as %s, want %s", got.Header.TransferSyntaxUID, tc.ts)
			}
			if !slices.Equal(got.Pixels, want.Pixels) || !slices.Equal(got.SOPInstanceUIDs, want.SOPInstanceUIDs) ||
				!slices.Equal(got.Positions, want.Positions) {
				t.Error("the received series loads differently from the files sent")
			}
		})
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("%s: %v", pattern, err)
	}
	return m
}

// receive runs a netdicom receiver, sends files with storescu and returns the series event.
func receive(t *testing.T, storescu string, flags, files []string) netdicom.SeriesEvent {
	t.Helper()
	evs := make(chan netdicom.SeriesEvent, 4)
	srv, err := netdicom.NewServer(netdicom.Options{
		AETitle: "MIDLINE", StateDir: t.TempDir(), SeriesTimeout: 2 * time.Second, ReleaseGrace: 200 * time.Millisecond,
		OnSeries: func(ev netdicom.SeriesEvent) { evs <- ev },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(netdicomtest.Serve(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-aet", "SCANNER", "-aec", "MIDLINE"}, flags...)
	args = append(append(args, host, port), files...)
	cmd := exec.Command(storescu, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	select {
	case ev := <-evs:
		if ev.Kind != netdicom.SeriesReady || len(ev.Paths) != len(files) {
			t.Fatalf("event %s with %d paths for %d files", ev.Kind, len(ev.Paths), len(files))
		}
		return ev
	case <-time.After(time.Minute):
		t.Fatal("no series event within a minute")
	}
	return netdicom.SeriesEvent{}
}
