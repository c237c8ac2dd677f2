package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/midline-rt/midline/firmware/config"
	"github.com/midline-rt/midline/internal/peers"
)

func TestNotifierFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want notifier
		err  bool
	}{
		{name: "outside systemd", env: nil, want: notifier{}},
		{name: "notify only", env: map[string]string{"NOTIFY_SOCKET": "/run/systemd/notify"}, want: notifier{socket: "/run/systemd/notify"}},
		{name: "watchdog", env: map[string]string{"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"},
			want: notifier{socket: "@abstract", watchdog: 30 * time.Second}},
		{name: "watchdog of another process", env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"},
			want: notifier{socket: "/n"}},
		{name: "bad usec", env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "soon"}, want: notifier{socket: "/n"}, err: true},
		{name: "zero usec", env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "0"}, want: notifier{socket: "/n"}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := notifierFromEnv(func(k string) string { return tc.env[k] }, 42)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestCheckWatchdogOwner(t *testing.T) {
	for _, tc := range []struct {
		name  string
		board bool
		env   map[string]string
		want  error
	}{
		{name: "board alone", board: true},
		{name: "systemd alone", env: map[string]string{"NOTIFY_SOCKET": "/n", "WATCHDOG_USEC": "1000000"}},
		{name: "board under Type=notify", board: true, env: map[string]string{"NOTIFY_SOCKET": "/n"}, want: errTwoWatchdogs},
		{name: "board under WatchdogSec", board: true, env: map[string]string{"WATCHDOG_USEC": "1000000"}, want: errTwoWatchdogs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkWatchdogOwner(tc.board, func(k string) string { return tc.env[k] }); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestNewRefusesTwoWatchdogs: the daemon does not start (and never opens the board's watchdog)
// when systemd supervises it and board.watchdog is set too.
func TestNewRefusesTwoWatchdogs(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "notify"))
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Board.Profile, cfg.Board.Watchdog = "sim", true
	_, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, errTwoWatchdogs) {
		t.Fatalf("New: %v, want %v", err, errTwoWatchdogs)
	}
}

// notifySocket is systemd's end: a unixgram socket collecting what the daemon says.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return path, msgs
}

func next(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(peers.Patience):
		t.Fatal("no notification")
		return ""
	}
}

// TestNotifySystemd runs the daemon's systemd loop against a real unixgram socket: READY=1 only
// once the DICOM port accepts, WATCHDOG=1 while healthy, none while the job queue's alarm is up
// (a status line instead), WATCHDOG=1 again when it clears, STOPPING=1 at shutdown.
func TestNotifySystemd(t *testing.T) {
	path, msgs := notifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "20000") // a ping every 10 ms
	t.Setenv("WATCHDOG_PID", "")
	port := peers.FreePort(t)
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), alarms: map[string]string{}}
	d.cfg.DICOM.Listen = net.JoinHostPort("", strconv.Itoa(port)) // ":port": the probe dials loopback
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.notifySystemd(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case m := <-msgs:
		t.Fatalf("%q before the DICOM port accepts", m)
	case <-time.After(100 * time.Millisecond):
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if m := next(t, msgs); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("first message %q, want READY=1", m)
	}
	if m := next(t, msgs); m != "WATCHDOG=1" {
		t.Fatalf("%q, want WATCHDOG=1", m)
	}
	d.setAlarm("jobs", "job queue not writable: disk full")
	// A ping sent just before the alarm may still be in the socket; then only status lines come.
	const unhealthy = "STATUS=unhealthy: job queue not writable: disk full"
	m := next(t, msgs)
	for i := 0; m == "WATCHDOG=1"; i++ {
		if i == 3 {
			t.Fatal("WATCHDOG=1 goes on while the job queue's alarm is up")
		}
		m = next(t, msgs)
	}
	for range 3 {
		if m != unhealthy {
			t.Fatalf("%q while unhealthy", m)
		}
		m = next(t, msgs)
	}
	d.clearAlarm("jobs")
	for m = next(t, msgs); m != "WATCHDOG=1"; m = next(t, msgs) {
		if m != unhealthy {
			t.Fatalf("%q after the alarm cleared", m)
		}
	}
	cancel()
	<-done
	// The reader may not have taken STOPPING=1 off the socket yet: wait for it, past any ping
	// still queued before it.
	for m = next(t, msgs); m != "STOPPING=1"; m = next(t, msgs) {
		if m != "WATCHDOG=1" {
			t.Fatalf("%q at shutdown, want STOPPING=1", m)
		}
	}
	select {
	case m := <-msgs:
		t.Fatalf("%q after STOPPING=1", m)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestNotifySystemdOff: outside systemd the loop sends nothing and returns at once.
func TestNotifySystemdOff(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d.cfg.DICOM.Listen = "127.0.0.1:1"
	done := make(chan struct{})
	go func() { defer close(done); d.notifySystemd(context.Background()) }()
	select {
	case <-done:
	case <-time.After(peers.Patience):
		t.Fatal("notifySystemd did not return outside systemd")
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		":11112": "127.0.0.1:11112", "0.0.0.0:104": "127.0.0.1:104", "[::]:104": "[::1]:104",
		"10.1.2.3:104": "10.1.2.3:104", "127.0.0.1:11113": "127.0.0.1:11113",
	} {
		if got := DialAddr(in); got != want {
			t.Errorf("DialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
