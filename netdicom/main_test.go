package netdicom

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv makes the test binary run a receiver instead of tests, so that kill -9 tests can
// kill a real process: MIDLINE_NETDICOM_CHILD=<state dir>, it prints its address and serves.
const childEnv = "MIDLINE_NETDICOM_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	if dir := os.Getenv(outboxChildEnv); dir != "" {
		os.Exit(runOutboxChild(dir))
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
	if prof := os.Getenv("MIDLINE_CPUPROFILE"); prof != "" { // for looking at the benchmark
		f, err := os.Create(prof)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
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

// outboxChildEnv makes the test binary run an outbox sending to 127.0.0.1:$MIDLINE_OUTBOX_PORT,
// first enqueueing the files in $MIDLINE_OUTBOX_ENQUEUE (comma separated) when set.
const outboxChildEnv = "MIDLINE_OUTBOX_CHILD"

func runOutboxChild(dir string) int {
	port, _ := strconv.Atoi(os.Getenv("MIDLINE_OUTBOX_PORT"))
	ob, err := OpenOutbox(OutboxOptions{Dir: dir, Destinations: []Destination{{Name: "tps", AETitle: "STORESCP", Host: "127.0.0.1", Port: port}},
		BaseDelay: 40 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 1000,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if files := os.Getenv("MIDLINE_OUTBOX_ENQUEUE"); files != "" {
		if _, err := ob.Enqueue("tps", strings.Split(files, ",")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("ready")
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ob.Run(ctx)
	return 0
}
