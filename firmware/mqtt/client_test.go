package mqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness runs a Client against a broker until the test ends.
type harness struct {
	t      *testing.T
	c      *Client
	ob     *Outbox
	cancel context.CancelFunc
	done   chan struct{}
}

func runClient(t *testing.T, brokerURL, dir string) *harness {
	t.Helper()
	ob, err := OpenOutbox(OutboxOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{
		Broker: brokerURL, DeviceID: "box-1", Site: "site-a", Group: "g1", TopicPrefix: "midline/v1",
		Outbox: ob, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, KeepAlive: 5 * time.Second,
		ConnectTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, c: c, ob: ob, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); c.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

// stop ends Run as the daemon's shutdown does; idempotent.
func (h *harness) stop() {
	h.cancel()
	<-h.done
}

func payload(id string) []byte {
	b, _ := json.Marshal(map[string]string{"schema": "midline.test/1", "message_id": id})
	return b
}

// enqueue queues n messages alternating between the events topic and one contours topic,
// numbered from first; it returns their message ids.
func enqueue(t *testing.T, c *Client, first, n int) []string {
	t.Helper()
	var ids []string
	for i := first; i < first+n; i++ {
		id := MessageID("box-1", "m", fmt.Sprint(i))
		var err error
		if i%2 == 0 {
			err = c.Event(payload(id))
		} else {
			err = c.Contours("job-7", payload(id))
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkDelivery checks that every id arrived and that, with duplicates removed, each topic saw
// its messages in the order they were queued.
func checkDelivery(t *testing.T, lines []string, ids []string) {
	t.Helper()
	order := map[string]int{}
	for i, id := range ids {
		order[id] = i
	}
	seen, last := map[string]bool{}, map[string]int{}
	for _, l := range lines {
		topic, body, _ := strings.Cut(l, " ")
		var p struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal([]byte(body), &p) != nil || !strings.Contains(topic, "/events") && !strings.Contains(topic, "/contours/") {
			continue
		}
		if seen[p.MessageID] {
			continue // a QoS 1 duplicate, removed by its dedupe key
		}
		seen[p.MessageID] = true
		if n, ok := last[topic]; ok && order[p.MessageID] < n {
			t.Errorf("%s: %s arrived after a later message", topic, p.MessageID)
		}
		last[topic] = order[p.MessageID]
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("%s never arrived", id)
		}
	}
}

func allSeen(lines func() []string, ids []string) func() bool {
	return func() bool {
		got := strings.Join(lines(), "\n")
		for _, id := range ids {
			if !strings.Contains(got, `"`+id+`"`) {
				return false
			}
		}
		return true
	}
}

func TestPublishesInOrder(t *testing.T) {
	b := startBroker(t)
	sub := subscribe(t, b, "midline/#")
	h := runClient(t, "tcp://"+b.addr(), t.TempDir())
	ids := enqueue(t, h.c, 0, 20)
	waitUntil(t, "all messages at mosquitto_sub", allSeen(sub.received, ids))
	checkDelivery(t, sub.received(), ids)
	waitUntil(t, "outbox empty", func() bool { n, _ := h.ob.Len(); return n == 0 })
	if s := h.c.Stats(); !s.Connected || s.Delivered != 20 {
		t.Errorf("stats = %+v", s)
	}
	waitUntil(t, "retained online", func() bool { return sub.has("midline/v1/site-a/box-1/status online") })

	if err := h.c.PublishHealth([]byte(`{"schema":"midline.health/1"}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "health", func() bool { return sub.has(`midline/v1/site-a/box-1/health {"schema":"midline.health/1"}`) })
	if n, _ := h.ob.Len(); n != 0 {
		t.Errorf("health went into the outbox")
	}

	// A clean shutdown says offline itself: the broker sends no will after DISCONNECT.
	h.stop()
	waitUntil(t, "offline on shutdown", func() bool { return sub.has("midline/v1/site-a/box-1/status offline") })
}

func TestBrokerOutageLosesNothing(t *testing.T) {
	b := startBroker(t)
	p := startProxy(t, b.addr())
	sub := subscribe(t, b, "midline/#")
	h := runClient(t, p.url(), t.TempDir())
	before := enqueue(t, h.c, 0, 10)
	waitUntil(t, "first batch", allSeen(sub.received, before))
	lines := sub.received()

	// The broker dies while the client publishes; the second batch is queued during the
	// outage. The proxy holds the client off until a new subscriber listens, since a broker
	// without persistence forgets subscriptions.
	var wg sync.WaitGroup
	wg.Add(1)
	var during []string
	go func() { defer wg.Done(); during = enqueue(t, h.c, 10, 20) }()
	b.stop()
	p.setOpen(false)
	p.cut()
	wg.Wait()
	waitUntil(t, "client sees the outage", func() bool { return !h.c.Stats().Connected })
	sub.stop()
	lines = append(lines, sub.received()[len(lines):]...)
	b.start()
	sub2 := subscribe(t, b, "midline/#")
	p.setOpen(true)

	after := enqueue(t, h.c, 30, 5)
	all := append(append(append([]string{}, before...), during...), after...)
	waitUntil(t, "every message after the outage", func() bool {
		return allSeen(func() []string { return append(append([]string{}, lines...), sub2.received()...) }, all)()
	})
	checkDelivery(t, append(lines, sub2.received()...), all)
	if s := h.c.Stats(); s.Reconnects < 1 || s.LastError == "" {
		t.Errorf("stats after an outage = %+v", s)
	}
}

func TestRestartRedeliversPending(t *testing.T) {
	b := startBroker(t)
	sub := subscribe(t, b, "midline/#")
	dir := t.TempDir()

	// A first "process" queues while the broker is unreachable (the proxy refuses it) and
	// stops; a second one opens the same folder and delivers.
	p := startProxy(t, b.addr())
	p.setOpen(false)
	h := runClient(t, p.url(), dir)
	ids := enqueue(t, h.c, 0, 8)
	h.stop()

	// Counted before the second client runs: once it does, it drains the outbox at once.
	reopened, err := OpenOutbox(OutboxOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := reopened.Len(); n != 8 {
		t.Fatalf("reopened outbox holds %d entries, want 8", n)
	}
	h2 := runClient(t, "tcp://"+b.addr(), dir)
	more := enqueue(t, h2.c, 8, 2)
	all := append(ids, more...)
	waitUntil(t, "pending messages after the restart", allSeen(sub.received, all))
	checkDelivery(t, sub.received(), all)
}

func TestLastWillAndRetainedOnline(t *testing.T) {
	b := startBroker(t)
	p := startProxy(t, b.addr())
	sub := subscribe(t, b, "midline/v1/site-a/box-1/status")
	h := runClient(t, p.url(), t.TempDir())
	const online, offline = "midline/v1/site-a/box-1/status online", "midline/v1/site-a/box-1/status offline"
	waitUntil(t, "online", func() bool { return sub.has(online) })

	// Cut the TCP connection without a DISCONNECT: the broker publishes the will.
	p.cut()
	waitUntil(t, "last will offline", func() bool { return sub.has(offline) })
	waitUntil(t, "online again after reconnecting", func() bool {
		l := sub.received()
		return len(l) >= 3 && l[len(l)-1] == online
	})
	if s := h.c.Stats(); s.Reconnects < 1 {
		t.Errorf("Reconnects = %d after a cut", s.Reconnects)
	}

	// A subscriber that comes later gets the retained status.
	late := subscribe(t, b, "midline/v1/site-a/box-1/status")
	waitUntil(t, "retained online for a late subscriber", func() bool { return late.has(online) })
}

func TestOTACommandsAndState(t *testing.T) {
	b := startBroker(t)
	sub := subscribe(t, b, "midline/v1/site-a/box-1/ota/state")
	h := runClient(t, "tcp://"+b.addr(), t.TempDir())
	h.c.SetOTAState([]byte(`{"schema":"midline.ota_state/1","phase":"idle"}`))
	waitUntil(t, "ota state", func() bool {
		return sub.has(`midline/v1/site-a/box-1/ota/state {"schema":"midline.ota_state/1","phase":"idle"}`)
	})

	for _, topic := range h.c.Topics().OTACommands() {
		// The subscription is made after connecting; publish until it is in place.
		got := false
		for i := 0; !got && i < int(patience/(200*time.Millisecond)); i++ {
			mosquittoPub(t, b, topic, `{"cmd":"check"}`)
			select {
			case c := <-h.c.Commands():
				got = true
				if c.Topic != topic || string(c.Payload) != `{"cmd":"check"}` || c.Group != strings.Contains(topic, "/group/") {
					t.Errorf("command = %+v", c)
				}
			case <-time.After(200 * time.Millisecond):
			}
		}
		if !got {
			t.Fatalf("no command from %s", topic)
		}
	}
}

func mosquittoPub(t *testing.T, b *broker, topic, msg string) {
	t.Helper()
	if out, err := execCommand("mosquitto_pub", "-h", "127.0.0.1", "-p", fmt.Sprint(b.Port), "-q", "1", "-t", topic, "-m", msg); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
