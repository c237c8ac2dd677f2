package mqtt

import (
	"context"
	"fmt"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// stableConnection is how long a connection must last for the reconnect delay to start again
// from MinBackoff; a broker that accepts and drops at once keeps backing off.
const stableConnection = time.Minute

// Run connects, keeps reconnecting with capped, jittered exponential backoff, and while
// connected drains the outbox in order, announces "online" and serves OTA commands. It returns
// nil when ctx ends, after publishing "offline" and disconnecting cleanly. Call it once.
func (c *Client) Run(ctx context.Context) error {
	attempt, first := 0, true
	for {
		if err := c.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.fail("connect", err)
			attempt++
			if !sleep(ctx, c.backoff(attempt)) {
				return nil
			}
			continue
		}
		if !first {
			c.update(func(s *Stats) { s.Reconnects++ })
		}
		first = false
		c.o.Logger.Info("mqtt: connected", "broker", c.o.Broker)
		c.update(func(s *Stats) { s.Connected = true })
		since := time.Now()
		err := c.serve(ctx)
		c.update(func(s *Stats) { s.Connected = false })
		if ctx.Err() != nil {
			c.goodbye()
			return nil
		}
		c.fail("connection lost", err)
		if time.Since(since) >= stableConnection {
			attempt = 0
		}
		attempt++
		if !sleep(ctx, c.backoff(attempt)) {
			return nil
		}
	}
}

// backoff is the delay before attempt n (1, 2, ...): MinBackoff doubling up to MaxBackoff, then
// a random point in its upper half, so that a site's boxes do not reconnect in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.o.MinBackoff
	for i := 1; i < n && d < c.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.o.MaxBackoff)
	return d/2 + time.Duration(c.o.Jitter()*float64(d/2))
}

func (c *Client) connect(ctx context.Context) error {
	select {
	case <-c.lost: // a stale signal from the previous connection
	default:
	}
	tok := c.cl.Connect()
	if err := wait(ctx, tok, 2*c.o.ConnectTimeout); err != nil {
		c.cl.Disconnect(0)
		return err
	}
	return nil
}

// serve runs one connection's work until the connection is lost or ctx ends.
func (c *Client) serve(ctx context.Context) error {
	connCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.drain(connCtx) }()
	go func() { defer wg.Done(); c.announce(connCtx) }()
	var err error
	select {
	case err = <-c.lost:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	return err
}

// announce subscribes to the command topics, publishes "online" (retained) and keeps ota/state
// published. It runs in its own goroutine: paho's handlers never wait on the broker.
func (c *Client) announce(ctx context.Context) {
	filters := map[string]byte{}
	for _, t := range c.topics.OTACommands() {
		filters[t] = 1
	}
	if err := wait(ctx, c.cl.SubscribeMultiple(filters, c.onCommand), c.o.ConnectTimeout); err != nil && ctx.Err() == nil {
		c.fail("subscribe", err)
	}
	if err := wait(ctx, c.cl.Publish(c.topics.Status(), 1, true, StatusOnline), c.o.ConnectTimeout); err != nil && ctx.Err() == nil {
		c.fail("status", err)
	}
	for {
		c.mu.Lock()
		state := c.otaState
		c.mu.Unlock()
		if state != nil {
			if err := wait(ctx, c.cl.Publish(c.topics.OTAState(), 1, true, state), c.o.PublishTimeout); err != nil && ctx.Err() == nil {
				c.fail("ota state", err)
			}
		}
		select {
		case <-c.state:
		case <-ctx.Done():
			return
		}
	}
}

// onCommand is paho's message handler: it copies and hands the command over without blocking.
func (c *Client) onCommand(_ paho.Client, m paho.Message) {
	cmd := Command{Topic: m.Topic(), Group: m.Topic() != c.topics.OTACommands()[0]}
	if n := len(m.Payload()); n > maxCommandBytes {
		c.o.Logger.Warn("mqtt: oversized OTA command not kept", "topic", m.Topic(), "bytes", n)
		cmd.Oversize = n
	} else {
		cmd.Payload = append([]byte(nil), m.Payload()...)
	}
	select {
	case c.cmds <- cmd:
	default:
		c.update(func(s *Stats) { s.DroppedCommands++ })
		c.o.Logger.Warn("mqtt: OTA command dropped: nobody is reading commands", "topic", m.Topic())
	}
}

// drain publishes outbox entries oldest first, one at a time: the next is sent only after the
// broker acknowledged the previous, which keeps every topic's order even across reconnects.
func (c *Client) drain(ctx context.Context) {
	for ctx.Err() == nil {
		e, ok, err := c.o.Outbox.Oldest()
		if err != nil {
			c.fail("outbox", err)
			sleep(ctx, c.o.MinBackoff)
			continue
		}
		if !ok {
			select {
			case <-c.o.Outbox.Ready():
			case <-ctx.Done():
			}
			continue
		}
		if err := c.deliver(ctx, e); err != nil {
			if ctx.Err() == nil {
				c.fail("publish", err)
				sleep(ctx, c.o.MinBackoff)
			}
			continue
		}
		if err := c.o.Outbox.Remove(e.Seq); err != nil {
			c.fail("outbox", err)
		}
		c.update(func(s *Stats) { s.Delivered++ })
	}
}

func (c *Client) deliver(ctx context.Context, e Entry) error {
	if c.inflight == nil || c.inflight.seq != e.Seq {
		c.inflight = &inflight{seq: e.Seq, tok: c.cl.Publish(e.Topic, e.QoS, e.Retained, e.Payload)}
	}
	err := wait(ctx, c.inflight.tok, c.o.PublishTimeout)
	if ctx.Err() == nil {
		c.inflight = nil // delivered, refused or timed out: the next attempt publishes anew
	}
	return err
}

// goodbye publishes "offline" (a clean disconnect sends no will) and disconnects.
func (c *Client) goodbye() {
	tok := c.cl.Publish(c.topics.Status(), 1, true, StatusOffline)
	tok.WaitTimeout(2 * time.Second)
	c.cl.Disconnect(250)
	c.o.Logger.Info("mqtt: disconnected", "broker", c.o.Broker)
}

// wait waits for a paho token, ctx or a safety timeout, whichever comes first.
func wait(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("mqtt: no answer from the broker within %s", timeout)
	}
}

// sleep waits d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
