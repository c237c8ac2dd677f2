package mqtt

import (
	"bufio"
	"context"
	"fmt"
	"io"
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

// A safety net for waits on the real broker; tests never assert how long anything takes.
const patience = 30 * time.Second

// broker is a real mosquitto on a loopback port, which a test may stop and start again.
type broker struct {
	t    *testing.T
	bin  string
	conf string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startBroker(t *testing.T) *broker { t.Helper(); return startBrokerWith(t, "") }

// startBrokerWith starts mosquitto with a plain listener on b.port and extra configuration
// lines (a second listener, for TLS).
func startBrokerWith(t *testing.T, extra string) *broker {
	t.Helper()
	b := &broker{t: t, bin: testenv.Require(t, "mosquitto"), port: freePort(t)}
	testenv.Require(t, "mosquitto_sub")
	b.conf = filepath.Join(t.TempDir(), "mosquitto.conf")
	conf := fmt.Sprintf("persistence false\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlistener %d 127.0.0.1\n%s", b.port, extra)
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }

func (b *broker) start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stderr = testWriter{b.t, "mosquitto"}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(b.cmd, b.done)
	waitUntil(b.t, "mosquitto listens", func() bool {
		c, err := net.DialTimeout("tcp", b.addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop kills the broker (no clean shutdown: nothing is flushed to anyone).
func (b *broker) stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	<-b.done
	b.cmd = nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// subscriber is mosquitto_sub, the independent receiver: it records "topic payload" lines.
type subscriber struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func subscribe(t *testing.T, b *broker, topic string) *subscriber {
	t.Helper()
	s := &subscriber{t: t, done: make(chan struct{})}
	s.cmd = exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-q", "1", "-v",
		"-t", topic, "-t", "probe/#", "-i", fmt.Sprintf("sub-%d", time.Now().UnixNano()))
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = testWriter{t, "mosquitto_sub"}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.stop)
	s.ready(b)
	return s
}

// ready returns once the subscription is in place: a probe published after it arrives.
func (s *subscriber) ready(b *broker) {
	for i := 0; ; i++ {
		probe := fmt.Sprintf("probe-%d", i)
		exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.port), "-q", "1", "-t", "probe/x", "-m", probe).Run()
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if s.has("probe/x " + probe) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if i > int(patience/(500*time.Millisecond)) {
			s.t.Fatal("mosquitto_sub never subscribed")
		}
	}
}

func (s *subscriber) has(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l == line {
			return true
		}
	}
	return false
}

// received returns the lines seen so far, without probes.
func (s *subscriber) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if !strings.HasPrefix(l, "probe/") {
			out = append(out, l)
		}
	}
	return out
}

func (s *subscriber) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.done
	s.cmd.Wait()
}

// proxy stands between the client and the broker, so that a test can cut the client's
// connection abruptly (the broker then publishes the will) or refuse it for a while.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, open: true}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { l.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		open := p.open
		p.mu.Unlock()
		if !open {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(u, c); u.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, u); c.Close() }()
	}
}

// cut closes every connection at once, with a TCP reset where it can.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// setOpen lets connections through (true) or refuses them (false).
func (p *proxy) setOpen(open bool) {
	p.mu.Lock()
	p.open = open
	p.mu.Unlock()
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitUntil polls cond until it holds; the deadline only stops a hung test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func execCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
