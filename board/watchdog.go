package board

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// DefaultWatchdogInterval is how often the watchdog is petted when the device does not say its
// timeout; every board here defaults to a timeout of a minute or more.
const DefaultWatchdogInterval = 10 * time.Second

// ErrSystemdWatchdog is returned when board.watchdog is set while systemd runs the daemon with
// its own watchdog (WATCHDOG_USEC): one owner only (DESIGN.md).
var ErrSystemdWatchdog = errors.New("board.watchdog is set but systemd already supervises this process (WATCHDOG_USEC); one owner only")

// watchdog pets a Linux watchdog device (Documentation/watchdog/watchdog-api.rst) while the
// pipeline is healthy. Any write pets it; writing 'V' just before closing is the magic close
// that disarms it on a clean shutdown. Skipping pets while unhealthy lets the device reboot a
// hung box.
type watchdog struct {
	dev     io.WriteCloser
	path    string
	healthy func() error
	timeout time.Duration // 0 when the device did not say

	mu       sync.Mutex
	closed   bool
	pets     uint64
	lastPet  time.Time
	starving string // why the last pet was skipped; "" when petting
	err      error  // the last write error
}

// pet writes one keepalive if the pipeline is healthy. It returns why it did not: the health
// function's error, or the device's.
func (w *watchdog) pet(now time.Time) error {
	herr := w.healthy()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	if herr != nil {
		w.starving = herr.Error()
		return fmt.Errorf("not petting %s: pipeline unhealthy: %w", w.path, herr)
	}
	w.starving = ""
	if _, err := w.dev.Write([]byte{0}); err != nil {
		w.err = fmt.Errorf("pet %s: %w", w.path, err)
		return w.err
	}
	w.pets, w.lastPet, w.err = w.pets+1, now, nil
	return nil
}

// close disarms the watchdog (magic close) and closes the device; a second call does nothing.
func (w *watchdog) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	_, werr := w.dev.Write([]byte("V"))
	cerr := w.dev.Close()
	if werr != nil {
		return fmt.Errorf("magic close %s: %w", w.path, werr)
	}
	return cerr
}

// WatchdogReading is the watchdog's state for health telemetry.
type WatchdogReading struct {
	// Owner is "daemon" when Midline drives the device, "none" when board.watchdog is off
	// (under systemd, systemd owns it).
	Owner    string    `json:"owner"`
	Device   string    `json:"device,omitempty"`
	TimeoutS float64   `json:"timeout_s,omitempty"`
	Pets     uint64    `json:"pets"`
	LastPet  time.Time `json:"last_pet,omitzero"`
	Starving string    `json:"starving,omitempty"`
	Closed   bool      `json:"closed,omitempty"`
	Error    string    `json:"error,omitempty"`
	Note     string    `json:"note,omitempty"`
}

func (w *watchdog) reading() WatchdogReading {
	if w == nil {
		return WatchdogReading{Owner: "none"}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := WatchdogReading{Owner: "daemon", Device: w.path, TimeoutS: w.timeout.Seconds(), Pets: w.pets,
		LastPet: w.lastPet, Starving: w.starving, Closed: w.closed}
	if w.err != nil {
		r.Error = w.err.Error()
	}
	return r
}

// petInterval is a third of the device's timeout, so two pets can be missed to scheduling
// before it fires; DefaultWatchdogInterval when the timeout is unknown.
func petInterval(timeout, want time.Duration) time.Duration {
	if want <= 0 {
		want = DefaultWatchdogInterval
	}
	if timeout > 0 && want > timeout/3 {
		return timeout / 3
	}
	return want
}
