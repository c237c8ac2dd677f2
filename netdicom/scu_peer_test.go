package netdicom

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
)

// startStorescp runs dcmtk's storescp (bit-preserving, every transfer syntax it knows) on a
// free loopback port until the test ends, and returns its port and output folder.
func startStorescp(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port, startStorescpOn(t, port, extra...)
}

// startStorescpOn runs storescp on a given port and returns its output folder.
func startStorescpOn(t *testing.T, port string, extra ...string) string {
	t.Helper()
	path := testenv.Require(t, "storescp")
	dir := t.TempDir()
	xfer := "+xa"
	if len(extra) > 0 && strings.HasPrefix(extra[0], "+x") {
		xfer, extra = extra[0], extra[1:]
	}
	args := append([]string{"-aet", "STORESCP", "+B", xfer, "-od", dir}, extra...)
	cmd := exec.Command(path, append(args, port)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return dir
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("storescp did not listen on %s", port)
	return ""
}

// TestSendToStorescp sends files in every transfer syntax with Midline's SCU to storescp and
// checks storescp stored each data set byte for byte as it was in our file.
func TestSendToStorescp(t *testing.T) {
	series := uidFor(t.Name())
	p := phantom{series: series, n: 5, rows: 64, cols: 64}
	src := p.write(t, t.TempDir())
	var files []string
	for i, f := range src {
		o := filepath.Join(t.TempDir(), filepath.Base(f))
		switch i {
		case 0:
			mustDcmtk(t, "dcmconv", "+ti", f, o)
		case 1:
			mustDcmtk(t, "dcmconv", "+tb", f, o)
		case 2:
			mustDcmtk(t, "dcmconv", "+td", f, o)
		case 3:
			mustDcmtk(t, "dcmcrle", f, o)
		default:
			o = f
		}
		files = append(files, o)
	}
	for _, pdu := range []string{"", "4096"} {
		t.Run("max-pdu-"+pdu, func(t *testing.T) {
			var extra []string
			if pdu != "" {
				extra = []string{"--max-pdu", pdu}
			}
			port, dir := startStorescp(t, extra...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := SendFiles(ctx, "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"}, files)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil || r.Status != StatusSuccess {
					t.Fatalf("%s: status %v, %v", r.Path, r.Status, r.Err)
				}
				got := filepath.Join(dir, "MR."+p.instanceUID(i))
				if !bytes.Equal(dataSetBytes(t, got), dataSetBytes(t, files[i])) {
					t.Errorf("storescp's %s differs from our %s", got, files[i])
				}
				if fileMeta(t, got).TransferSyntax != fileMeta(t, files[i]).TransferSyntax {
					t.Errorf("%s: transfer syntax changed", got)
				}
			}
		})
	}
}

func TestSendRefusedByStorescp(t *testing.T) {
	port, _ := startStorescp(t, "--refuse")
	err := Echo(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP", Timeout: 10 * time.Second})
	var rj *RejectError
	if !errors.As(err, &rj) {
		t.Fatalf("Echo to a refusing storescp: %v, want a RejectError", err)
	}
	if !strings.Contains(err.Error(), "rejected") {
		t.Errorf("error %q does not say rejected", err)
	}
}

func TestEchoStorescp(t *testing.T) {
	port, _ := startStorescp(t)
	if err := Echo(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"}); err != nil {
		t.Fatal(err)
	}
}

// TestSendReportsStorescpFailureStatus removes storescp's output folder after it starts, so that
// it cannot write: our SCU reports storescp's own status, 0xA700, per file, and the outbox keeps
// such a job for a retry rather than dead-lettering it.
func TestSendReportsStorescpFailureStatus(t *testing.T) {
	port, dir := startStorescp(t)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	res, err := SendFiles(context.Background(), "127.0.0.1:"+port, ClientOptions{CalledAE: "STORESCP"}, []string{"testdata/mr_small_explicit.dcm"})
	var se *StatusError
	if err != nil || res[0].Status != StatusOutOfResources || !errors.As(res[0].Err, &se) {
		t.Fatalf("SendFiles: %v %+v, want 0xA700 from storescp", err, res)
	}
	if isPermanent(res[0].Err) {
		t.Error("0xA700 counted as permanent; the outbox would not retry it")
	}
}
