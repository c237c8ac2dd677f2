package mqtt

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/peers"
)

// A safety net for waits on the real broker; tests never assert how long anything takes.
const patience = 30 * time.Second

// broker is a real mosquitto on a loopback port (internal/peers), which a test may stop and
// start again.
type broker struct{ *peers.Broker }

func startBroker(t *testing.T) *broker { t.Helper(); return &broker{peers.Mosquitto(t)} }

// startBrokerWith adds extra configuration lines (a second listener, for TLS).
func startBrokerWith(t *testing.T, extra string) *broker {
	t.Helper()
	return &broker{peers.MosquittoWith(t, extra)}
}

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.Port) }
func (b *broker) start()       { b.Start() }
func (b *broker) stop()        { b.Stop() }

// subscriber is mosquitto_sub, the independent receiver.
type subscriber struct{ *peers.Subscriber }

func subscribe(t *testing.T, b *broker, topic string) *subscriber {
	t.Helper()
	return &subscriber{peers.Subscribe(t, b.Broker, topic)}
}

func (s *subscriber) has(line string) bool { return s.Has(line) }
func (s *subscriber) received() []string   { return s.Lines() }
func (s *subscriber) stop()                { s.Stop() }

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
