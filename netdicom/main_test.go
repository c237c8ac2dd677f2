package netdicom

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// childEnv makes the test binary run a receiver instead of tests, so that kill -9 tests can
// kill a real process: MIDLINE_NETDICOM_CHILD=<state dir>, it prints its address and serves.
const childEnv = "MIDLINE_NETDICOM_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

func runChild(dir string) int {
	aet := os.Getenv("MIDLINE_AET")
	if aet == "" {
		aet = "MIDLINE"
	}
	s, err := NewServer(Options{AETitle: aet, StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoFsync: os.Getenv("MIDLINE_NO_FSYNC") == "1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := os.Getenv("MIDLINE_LISTEN")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ln.Addr().String())
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := s.Serve(ctx, ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
