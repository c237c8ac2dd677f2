package board

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// eventually waits for cond, which a Board goroutine makes true after a fake clock tick. It
// bounds the wait, and asserts nothing about how long it took.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

type healthFlag struct{ bad atomic.Pointer[string] }

func (h *healthFlag) set(reason string) { h.bad.Store(&reason) }
func (h *healthFlag) check() error {
	if r := h.bad.Load(); r != nil && *r != "" {
		return errors.New(*r)
	}
	return nil
}

func watchdogBoard(t *testing.T, clk clockwork.Clock, health *healthFlag, logs *logBuf) (*Board, string) {
	t.Helper()
	dev := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions("testdata/generic-linux", logs)
	o.Clock, o.Healthy = clk, health.check
	o.Profile = &Profile{Name: ProfileGenericLinux, WatchdogDevice: dev}
	o.SampleInterval, o.WatchdogInterval = time.Hour, 10*time.Second
	b, err := New(context.Background(), Config{Profile: ProfileGenericLinux, Watchdog: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	return b, dev
}

// TestWatchdogPetsWhileHealthy runs the petter on a fake clock against a fake device file and
// checks every byte written: a keepalive per healthy tick, none while the pipeline is unhealthy,
// and the magic 'V' on Close.
func TestWatchdogPetsWhileHealthy(t *testing.T) {
	clk := clockwork.NewFakeClockAt(testStart)
	var health healthFlag
	var logs logBuf
	b, dev := watchdogBoard(t, clk, &health, &logs)
	b.Start()
	pets := func() uint64 { return b.Readings().Watchdog.Pets }
	eventually(t, "first pet at start", func() bool { return pets() == 1 })

	health.set("job queue stalled for 5m")
	clk.Advance(10 * time.Second)
	eventually(t, "skipped pet", func() bool { return b.Readings().Watchdog.Starving == "job queue stalled for 5m" })

	health.set("")
	clk.Advance(10 * time.Second)
	eventually(t, "second pet", func() bool { return pets() == 2 })
	if w := b.Readings().Watchdog; w.Starving != "" || !w.LastPet.Equal(testStart.Add(20*time.Second)) {
		t.Fatalf("watchdog reading %+v", w)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if f, r := logs.lines("part failing", "part=watchdog"), logs.lines("part back", "part=watchdog"); f != 1 || r != 1 {
		t.Fatalf("watchdog starving logged %d times, recovery %d times; want once each", f, r)
	}
	got, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "\x00\x00V" {
		t.Fatalf("device got %q, want two keepalives and the magic close", got)
	}
	if w := b.Readings().Watchdog; !w.Closed || w.Owner != "daemon" {
		t.Fatalf("after Close: %+v", w)
	}
}

func TestWatchdogRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{name: "systemd owns it", edit: func(o *Options) {
			o.Getenv = func(k string) string { return map[string]string{"WATCHDOG_USEC": "30000000"}[k] }
		}, want: ErrSystemdWatchdog.Error()},
		{name: "no health function", edit: func(o *Options) { o.Healthy = nil }, want: "no health function"},
		{name: "no device", edit: func(o *Options) { o.Profile.WatchdogDevice = "/nonexistent/watchdog" }, want: "open /nonexistent/watchdog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuf
			o := testOptions("testdata/generic-linux", &logs)
			o.Healthy = func() error { return nil }
			o.Profile = &Profile{Name: ProfileGenericLinux, WatchdogDevice: filepath.Join(t.TempDir(), "wd")}
			os.WriteFile(o.Profile.WatchdogDevice, nil, 0o600)
			tt.edit(&o)
			_, err := New(context.Background(), Config{Profile: ProfileGenericLinux, Watchdog: true}, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSimWatchdog(t *testing.T) {
	var logs logBuf
	sim := NewSim()
	o := testOptions("", &logs)
	o.Sim, o.Healthy = sim, func() error { return nil }
	b := newTestBoard(t, Config{Profile: ProfileSim, Watchdog: true}, o)
	if err := b.wd.pet(testStart); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(sim.WatchdogWrites()); got != "\x00V" {
		t.Fatalf("sim watchdog got %q", got)
	}
}

func TestPetInterval(t *testing.T) {
	tests := []struct{ timeout, want, got time.Duration }{
		{0, 0, DefaultWatchdogInterval},
		{60 * time.Second, 0, DefaultWatchdogInterval},
		{15 * time.Second, 0, 5 * time.Second},
		{120 * time.Second, 30 * time.Second, 30 * time.Second},
		{0, 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		if got := petInterval(tt.timeout, tt.want); got != tt.got {
			t.Errorf("petInterval(%v, %v) = %v, want %v", tt.timeout, tt.want, got, tt.got)
		}
	}
}
