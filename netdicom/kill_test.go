package netdicom

import (
	"bufio"
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
)

// startChild runs this test binary as a receiver process on the state folder.
func startChild(t *testing.T, state string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+state)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("receiver process: %v", err)
	}
	return cmd, strings.TrimSpace(line)
}

// TestKill9WhileReceiving kills the receiver process with SIGKILL while storescu sends a series,
// and counts only rounds where storescu saw the connection drop mid-series. After each kill,
// every instance storescu saw acknowledged must be complete in the spool.
func TestKill9WhileReceiving(t *testing.T) {
	storescu := testenv.Require(t, "storescu")
	if testing.Short() {
		t.Skip("kill -9 rounds are not short")
	}
	p := phantom{series: uidFor(t.Name()), n: 400, rows: 128, cols: 128}
	files := p.write(t, t.TempDir())
	want := make([][]byte, len(files))
	for i, f := range files {
		want[i] = dataSetBytes(t, f)
	}
	rng := rand.New(rand.NewPCG(4, 9))
	interrupted, round := 0, 0
	for ; interrupted < 20 && round < 80; round++ {
		state := t.TempDir()
		child, addr := startChild(t, state)
		_, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, storescu, append([]string{"-v", "-aec", "MIDLINE", "127.0.0.1", port}, files...)...)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(40+rng.IntN(200)) * time.Millisecond)
		child.Process.Signal(os.Kill)
		child.Wait()
		err := cmd.Wait()
		cancel()
		acked := strings.Count(out.String(), "Received Store Response (Success)")
		if err == nil || acked == 0 || acked == len(files) {
			t.Logf("round %d not counted: storescu error %v, %d acknowledged", round, err, acked)
			continue // the kill missed the transfer; not counted
		}
		interrupted++
		sp := p
		for i := range acked {
			path := (&testServer{dir: state}).storedPath(sp.series, sp.instanceUID(i))
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatalf("round %d: acknowledged instance %d of %d missing: %v", round, i, acked, rerr)
			}
			if !bytes.HasSuffix(got, want[i]) {
				t.Fatalf("round %d: acknowledged instance %d incomplete", round, i)
			}
		}
		// A restarted receiver rebuilds from the same folder and releases the series once.
		re := startServer(t, Options{StateDir: state, SeriesTimeout: 20 * time.Millisecond})
		ev := waitEvent(t, re)
		if len(ev.Paths) < acked || ev.Reason != ReadyRestart {
			t.Errorf("round %d: after restart %d instances (%s), want at least %d", round, len(ev.Paths), ev.Reason, acked)
		}
		re.stop()
	}
	if interrupted < 20 {
		t.Fatalf("only %d rounds interrupted a transfer in flight", interrupted)
	}
	t.Logf("%d of %d rounds interrupted storescu mid-series", interrupted, round)
}
