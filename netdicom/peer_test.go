package netdicom

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
)

// dcmtk runs a dcmtk program with TCP_NODELAY=1 (DESIGN.md) under a time bound and returns
// its combined output.
func dcmtk(t testing.TB, timeout time.Duration, prog string, args ...string) (string, error) {
	t.Helper()
	path := testenv.Require(t, prog)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustDcmtk(t testing.TB, prog string, args ...string) string {
	t.Helper()
	out, err := dcmtk(t, 2*time.Minute, prog, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return out
}

type testServer struct {
	*Server
	addr string
	port string
	dir  string
	mu   sync.Mutex
	evs  []SeriesEvent
	stop func()
}

func (ts *testServer) events() []SeriesEvent {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]SeriesEvent(nil), ts.evs...)
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer runs a Server on a loopback port until the test ends.
func startServer(t testing.TB, o Options) *testServer {
	t.Helper()
	ts := &testServer{}
	if o.AETitle == "" {
		o.AETitle = "MIDLINE"
	}
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	on := o.OnSeries
	o.OnSeries = func(ev SeriesEvent) {
		ts.mu.Lock()
		ts.evs = append(ts.evs, ev)
		ts.mu.Unlock()
		if on != nil {
			on(ev)
		}
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	ts.Server, ts.addr, ts.dir = s, ln.Addr().String(), o.StateDir
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Serve did not return 30 s after cancel")
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// storedPath is where the spool keeps an instance of a processed class.
func (ts *testServer) storedPath(series, sop string) string {
	return filepath.Join(ts.dir, "spool", spoolSeries, series, sop+".dcm")
}

// dataSetBytes returns a Part 10 file's data set bytes (after group 0002).
func dataSetBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b[m.DataOffset:]
}

// normalized re-encodes a file with dcmconv (Explicit VR Little Endian, or the file's own
// syntax when compressed) and returns the data set bytes, so that two files holding the same
// data set in different byte orders or VR encodings compare equal.
func normalized(t testing.TB, path string, keepSyntax bool) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "norm.dcm")
	opt := "+te"
	if keepSyntax {
		opt = "+t="
	}
	mustDcmtk(t, "dcmconv", opt, path, out)
	return dataSetBytes(t, out)
}

func sameDataSet(t testing.TB, sent, stored string, keepSyntax bool) {
	t.Helper()
	a, b := normalized(t, sent, keepSyntax), normalized(t, stored, keepSyntax)
	if !bytes.Equal(a, b) {
		t.Errorf("stored %s differs from sent %s (%d vs %d bytes after dcmconv)", stored, sent, len(b), len(a))
	}
}

func fileMeta(t testing.TB, path string) FileMeta {
	t.Helper()
	m, err := readMetaFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// uidFor makes a test series UID under the UUID-derived root 2.25 from a name.
func uidFor(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("2.25.%d", h.Sum64())
}
