// Package peers runs the real programs Midline talks to, for tests: mosquitto and
// mosquitto_sub, dcmtk's storescp and storescu. Each runs on a free loopback port and is
// stopped when the test ends. With CI=true a missing program fails the test (internal/testenv).
package peers

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/midline-rt/midline/internal/testenv"
)

// Patience bounds every wait here; a safety net, never a measurement.
const Patience = 60 * time.Second

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitListening waits until something accepts connections on addr.
func WaitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// Process is a started program that can be stopped (killed) and started again.
type Process struct {
	t    testing.TB
	name string
	args []string
	env  []string
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func start(t testing.TB, bin string, args []string, env []string, addr string) *Process {
	t.Helper()
	p := &Process{t: t, name: bin, args: args, env: env, addr: addr}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start runs the program (again) and waits for its port.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	cmd := exec.Command(p.name, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	if p.addr != "" {
		WaitListening(p.t, p.addr)
	}
}

// Terminate stops the program cleanly (SIGTERM) and waits for it.
func (p *Process) Terminate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	<-p.done
	p.cmd = nil
}

// Stop kills the program: no clean shutdown, nothing flushed to anyone.
func (p *Process) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// Broker is a mosquitto on a loopback port.
type Broker struct {
	*Process
	Port int
}

// URL is the broker's address as Midline's configuration writes it.
func (b *Broker) URL() string { return "tcp://127.0.0.1:" + strconv.Itoa(b.Port) }

// Mosquitto starts a broker without persistence, anonymous, on a free port.
func Mosquitto(t testing.TB) *Broker { t.Helper(); return mosquitto(t, false, "") }

// MosquittoWith also appends extra configuration lines (a second listener, for TLS).
func MosquittoWith(t testing.TB, extra string) *Broker { t.Helper(); return mosquitto(t, false, extra) }

// PersistentMosquitto keeps sessions and queued messages across a clean stop (Terminate) and a
// start, so a subscriber with a persistent session misses nothing while the broker is away.
func PersistentMosquitto(t testing.TB) *Broker { t.Helper(); return mosquitto(t, true, "") }

func mosquitto(t testing.TB, persistent bool, extra string) *Broker {
	t.Helper()
	bin := testenv.Require(t, "mosquitto")
	port := FreePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	persist := "persistence false\n"
	if persistent {
		persist = fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\n", dir)
	}
	// "user root": mosquitto started as root otherwise drops to its own user, which cannot read
	// or write the test's private folders; as any other user the line does nothing.
	text := fmt.Sprintf("user root\n%sallow_anonymous true\nlog_dest none\nlistener %d 127.0.0.1\n%s", persist, port, extra)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Broker{Process: start(t, bin, []string{"-c", conf}, nil, "127.0.0.1:"+strconv.Itoa(port)), Port: port}
}

// Subscriber is mosquitto_sub recording "topic payload" lines, the independent receiver.
type Subscriber struct {
	mu    sync.Mutex
	lines []string
	cmd   *exec.Cmd
	done  chan struct{}
	once  sync.Once
}

// Stop ends mosquitto_sub; the lines received so far stay readable.
func (s *Subscriber) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
		s.cmd.Wait()
	})
}

// Subscribe runs mosquitto_sub on topic (QoS 1) and returns once its subscription is in place.
func Subscribe(t testing.TB, b *Broker, topic string) *Subscriber {
	t.Helper()
	return subscribe(t, b, topic, nil)
}

// SubscribePersistent subscribes with a persistent session (clean session off, a fixed client
// id): mosquitto_sub reconnects after a broker restart and gets what was queued for it.
func SubscribePersistent(t testing.TB, b *Broker, topic string) *Subscriber {
	t.Helper()
	return subscribe(t, b, topic, []string{"-c"})
}

func subscribe(t testing.TB, b *Broker, topic string, extra []string) *Subscriber {
	t.Helper()
	bin := testenv.Require(t, "mosquitto_sub")
	pub := testenv.Require(t, "mosquitto_pub")
	s := &Subscriber{done: make(chan struct{})}
	args := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-q", "1", "-v", "-t", topic, "-t", "peers-probe/#",
		"-i", fmt.Sprintf("peers-sub-%d", time.Now().UnixNano())}, extra...)
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(Patience)
	for i := 0; time.Now().Before(deadline); i++ {
		probe := "probe-" + strconv.Itoa(i)
		exec.Command(pub, "-h", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-q", "1", "-t", "peers-probe/x", "-m", probe).Run()
		for range 25 {
			if s.Has("peers-probe/x " + probe) {
				return s
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Fatal("mosquitto_sub never received its probe")
	return nil
}

// Has reports whether a line was received exactly.
func (s *Subscriber) Has(line string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if l == line {
			return true
		}
	}
	return false
}

// Lines returns the lines received so far, without the probes.
func (s *Subscriber) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if !strings.HasPrefix(l, "peers-probe/") {
			out = append(out, l)
		}
	}
	return out
}

// Storescp is dcmtk's storescp writing what it receives into Dir (files named by modality and
// SOP Instance UID), answering to AE title AET.
type Storescp struct {
	*Process
	Port int
	Dir  string
	AET  string
}

// StartStorescp runs storescp on a free port (or on port, when not 0).
func StartStorescp(t testing.TB, aet string, port int) *Storescp {
	t.Helper()
	bin := testenv.Require(t, "storescp")
	if port == 0 {
		port = FreePort(t)
	}
	dir := t.TempDir()
	p := start(t, bin, []string{"-aet", aet, "-od", dir, strconv.Itoa(port)}, []string{"TCP_NODELAY=1"}, "127.0.0.1:"+strconv.Itoa(port))
	return &Storescp{Process: p, Port: port, Dir: dir, AET: aet}
}

// Received lists the files storescp wrote whose names start with prefix ("RS." for structure
// sets, "MR." for images).
func (s *Storescp) Received(prefix string) []string {
	entries, _ := os.ReadDir(s.Dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Storescu sends files or folders (recursively, *.dcm) to a called AE with dcmtk's storescu and
// returns its combined output and error.
func Storescu(t testing.TB, calledAE, addr string, paths ...string) (string, error) {
	t.Helper()
	bin := testenv.Require(t, "storescu")
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-aec", calledAE, "+sd", "+r", "+sp", "*.dcm", host, port}, paths...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
