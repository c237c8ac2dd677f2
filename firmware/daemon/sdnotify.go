package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// systemd's notification protocol (sd_notify(3)), without libsystemd: one datagram per message
// on the unixgram socket NOTIFY_SOCKET names. Under a unit with Type=notify the daemon says
// READY=1 once the DICOM port accepts connections, WATCHDOG=1 every WatchdogSec/2 only while
// d.healthy() holds, and STOPPING=1 when shutdown begins. Outside systemd it does nothing.

// errTwoWatchdogs refuses a second watchdog owner (DESIGN.md, Watchdog): under systemd, systemd
// owns the hardware watchdog and board.watchdog must be false.
var errTwoWatchdogs = errors.New("daemon: board.watchdog is set but systemd supervises this process " +
	"(NOTIFY_SOCKET or WATCHDOG_USEC): one watchdog owner only; set board.watchdog: false under systemd")

// checkWatchdogOwner runs before the board opens /dev/watchdog: once opened, a watchdog device
// keeps counting down even if the daemon then refuses to start.
func checkWatchdogOwner(boardWatchdog bool, getenv func(string) string) error {
	if boardWatchdog && (getenv("NOTIFY_SOCKET") != "" || getenv("WATCHDOG_USEC") != "") {
		return errTwoWatchdogs
	}
	return nil
}

// notifier is systemd's side of the protocol as the environment describes it.
type notifier struct {
	socket   string        // NOTIFY_SOCKET; "@name" is an abstract socket (Go maps '@' to NUL)
	watchdog time.Duration // WATCHDOG_USEC; 0: systemd does not watch this process
}

// notifierFromEnv reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. A WATCHDOG_PID naming
// another process (the variables were inherited) turns the watchdog off for this one.
func notifierFromEnv(getenv func(string) string, pid int) (notifier, error) {
	n := notifier{socket: getenv("NOTIFY_SOCKET")}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return n, nil
	}
	v, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || v == 0 {
		return n, fmt.Errorf("daemon: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	n.watchdog = time.Duration(v) * time.Microsecond
	return n, nil
}

// send writes one notification datagram.
func (n notifier) send(msg string) error {
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("daemon: sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("daemon: sd_notify %q: %w", msg, err)
	}
	return nil
}

// notifySystemd is the daemon's systemd loop; Run starts it beside the receiver. It returns when
// ctx ends, after STOPPING=1.
func (d *Daemon) notifySystemd(ctx context.Context) {
	n, err := notifierFromEnv(os.Getenv, os.Getpid())
	if err != nil {
		d.log.Error("daemon: systemd watchdog off", "err", err)
	}
	if n.socket == "" {
		return
	}
	if !waitAccepting(ctx, DialAddr(d.cfg.DICOM.Listen)) {
		return // shutting down before it ever served: systemd sees the exit
	}
	d.sdSend(n, "READY=1\nSTATUS=serving DICOM on "+d.cfg.DICOM.Listen)
	var tick <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		tick = t.C
		d.petSystemd(n)
	}
	for {
		select {
		case <-ctx.Done():
			d.sdSend(n, "STOPPING=1")
			return
		case <-tick:
			d.petSystemd(n)
		}
	}
}

// petSystemd says WATCHDOG=1 only while the pipeline is healthy: a stuck daemon is restarted.
func (d *Daemon) petSystemd(n notifier) {
	if err := d.healthy(); err != nil {
		d.sdSend(n, "STATUS=unhealthy: "+err.Error())
		return
	}
	d.sdSend(n, "WATCHDOG=1")
}

func (d *Daemon) sdSend(n notifier, msg string) {
	if err := n.send(msg); err != nil {
		d.log.Warn("daemon: systemd notification not sent", "err", err)
	}
}

// waitAccepting waits until addr accepts a TCP connection (the receiver is serving) or ctx ends.
// The probe connection closes unread; the receiver logs it as an association never requested.
func waitAccepting(ctx context.Context, addr string) bool {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// DialAddr turns a listen address into one a client on this machine can dial: an empty or
// unspecified host (":11112", "0.0.0.0:11112", "[::]:11112") means loopback. The CLI uses it
// for http.listen.
func DialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
