package netdicom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time)
	return ch // tests call RunOnce themselves
}
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func TestOutboxBackoffDeadLetterAndRestart(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	var calls []time.Time
	failures := []error{errors.New("connection refused"), &StatusError{Status: StatusOutOfResources}, errors.New("timeout"), nil}
	send := func(ctx context.Context, d Destination, files []string) error {
		calls = append(calls, clock.Now())
		err := failures[0]
		failures = failures[1:]
		return err
	}
	open := func() *Outbox {
		ob, err := OpenOutbox(OutboxOptions{Dir: dir, Destinations: []Destination{{Name: "tps", AETitle: "TPS", Host: "127.0.0.1", Port: 104}},
			BaseDelay: 10 * time.Second, MaxDelay: 25 * time.Second, MaxAttempts: 5, Clock: clock, Jitter: func() float64 { return 0.5 },
			Send: send, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return ob
	}
	ob := open()
	j, err := ob.Enqueue("tps", []string{"a.dcm", "b.dcm"})
	if err != nil {
		t.Fatal(err)
	}
	// Waits: 10 s * 2^(n-1) capped at 25 s, then 3/4 of it with jitter 0.5.
	wantWaits := []time.Duration{7500 * time.Millisecond, 15 * time.Second, 18750 * time.Millisecond}
	next := ob.RunOnce(t.Context())
	for i, w := range wantWaits {
		if got := next.Sub(clock.Now()); got != w {
			t.Fatalf("wait after attempt %d = %v, want %v", i+1, got, w)
		}
		clock.set(next.Add(-time.Millisecond))
		if ob.RunOnce(t.Context()); len(calls) != i+1 {
			t.Fatalf("attempt before its time")
		}
		clock.set(next)
		ob = open() // a restart between attempts keeps the schedule
		next = ob.RunOnce(t.Context())
	}
	got := ob.Jobs()[0]
	if got.ID != j.ID || got.State != JobDone || got.Attempts != 4 || len(calls) != 4 {
		t.Fatalf("job %+v after %d calls, want done on the fourth attempt", got, len(calls))
	}
}

func TestOutboxDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		attempts int
	}{
		{"permanent rejection", &RejectError{rjPermanent, rjSourceUser, rjCalledAENotKnown}, 1},
		{"data set refused", &StatusError{Status: StatusDataSetMismatch}, 1},
		{"transient until the limit", fmt.Errorf("dial: %w", errors.New("connection refused")), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: t0}
			ob, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), Destinations: []Destination{{Name: "tps"}}, MaxAttempts: 3, Clock: clock,
				Send: func(context.Context, Destination, []string) error { return tc.err }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ob.Enqueue("tps", []string{"x.dcm"})
			for range 10 {
				next := ob.RunOnce(t.Context())
				if next.IsZero() {
					break
				}
				clock.set(next)
			}
			j := ob.Jobs()[0]
			if j.State != JobDead || j.Attempts != tc.attempts || j.LastError != tc.err.Error() {
				t.Errorf("job %+v, want dead after %d attempts with the reason", j, tc.attempts)
			}
		})
	}
}

// TestOutboxToStorescp sends a job with the default C-STORE sender to a real storescp.
func TestOutboxToStorescp(t *testing.T) {
	port, dir := startStorescp(t)
	p := phantom{series: uidFor(t.Name()), n: 3, rows: 16, cols: 16}
	files := p.write(t, t.TempDir())
	var portN int
	fmt.Sscan(port, &portN)
	ob, err := OpenOutbox(OutboxOptions{Dir: t.TempDir(), Destinations: []Destination{{Name: "tps", AETitle: "STORESCP", Host: "127.0.0.1", Port: portN}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ob.Enqueue("tps", files)
	ob.RunOnce(t.Context())
	if j := ob.Jobs()[0]; j.State != JobDone {
		t.Fatalf("job %+v", j)
	}
	for i := range files {
		fileMeta(t, dir+"/MR."+p.instanceUID(i))
	}
}
