package mqtt

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/midline-rt/midline/internal/tlsfiles"
)

// ErrNotConnected is returned by PublishHealth while the broker is away; health is not queued.
var ErrNotConnected = errors.New("mqtt: not connected")

// Status payloads (docs/contracts.md, "MQTT delivery").
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// maxCommandBytes bounds an OTA command; a real one is a few hundred bytes.
const maxCommandBytes = 64 << 10

// Options configure a Client. Broker, DeviceID, Site, Group, TopicPrefix, CA, ClientCert and
// ClientKey are the configuration's values (config.MQTT and the device identity).
type Options struct {
	Broker, DeviceID, Site, Group, TopicPrefix string
	CA, ClientCert, ClientKey                  string
	// Outbox holds events and contours; the caller opens and owns it.
	Outbox *Outbox

	KeepAlive      time.Duration // 0: 30 s
	ConnectTimeout time.Duration // 0: 10 s
	MinBackoff     time.Duration // first reconnect delay; 0: 1 s
	MaxBackoff     time.Duration // cap of the reconnect delay; 0: 2 min
	// PublishTimeout is how long an outbox entry may wait for its PUBACK before it is sent again
	// (a duplicate QoS 1 allows); 0: 2 min. A safety net: paho resends in-flight messages itself.
	PublishTimeout time.Duration
	Jitter         func() float64 // in [0, 1); nil: math/rand/v2
	Logger         *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, 30*time.Second)
	def(&o.ConnectTimeout, 10*time.Second)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 2*time.Minute)
	def(&o.PublishTimeout, 2*time.Minute)
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Command is a message received on an ota/cmd topic. Group is set when it came through the
// group's topic. The payload is raw: the OTA code parses it, bounded to 64 KiB here.
type Command struct {
	Topic   string
	Payload []byte
	Group   bool
	// Oversize is the size of a payload above 64 KiB, which is not kept (Payload is nil): the
	// receiver refuses the command with its size.
	Oversize int
}

// Stats is what health telemetry reports about MQTT.
type Stats struct {
	Connected       bool
	Reconnects      uint64 // successful connections after the first
	Delivered       uint64 // outbox entries acknowledged by the broker
	OutboxDepth     int
	OutboxBytes     int64
	DroppedCommands uint64 // commands dropped because nobody read Commands()
	LastError       string
	LastErrorAt     time.Time
}

// Client connects to the broker as the device and publishes. Run owns the connection; the other
// methods may be called from any goroutine.
type Client struct {
	o      Options
	topics Topics
	cl     paho.Client
	lost   chan error   // connection-lost signals from paho, never blocking it
	cmds   chan Command // OTA commands for the daemon
	state  chan struct{}

	mu       sync.Mutex // guards the fields below
	stats    Stats
	otaState []byte

	inflight *inflight // owned by the drain goroutine of the current connection
}

// inflight is an outbox entry published and not yet acknowledged. Its paho token outlives a
// lost connection (clean session off: paho resends it after reconnecting), so the next
// connection's drain waits on it rather than publishing the entry twice.
type inflight struct {
	seq uint64
	tok paho.Token
}

// New checks the options and builds the client; nothing connects before Run.
func New(o Options) (*Client, error) {
	o = o.withDefaults()
	if o.Outbox == nil || o.Broker == "" || o.DeviceID == "" {
		return nil, errors.New("mqtt: Broker, DeviceID and Outbox are required")
	}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return nil, err
	}
	c := &Client{
		o:      o,
		topics: NewTopics(o.TopicPrefix, o.Site, o.DeviceID, o.Group),
		lost:   make(chan error, 1),
		cmds:   make(chan Command, 16),
		state:  make(chan struct{}, 1),
	}
	po := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.DeviceID).
		SetCleanSession(false).
		// Run reconnects itself, with jittered backoff that paho's own loop lacks.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(o.KeepAlive/2).
		SetConnectTimeout(o.ConnectTimeout).
		SetWriteTimeout(o.ConnectTimeout).
		SetWill(c.topics.Status(), StatusOffline, 1, true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case c.lost <- err:
			default:
			}
		})
	if tlsCfg != nil {
		po.SetTLSConfig(tlsCfg)
	}
	c.cl = paho.NewClient(po)
	return c, nil
}

// tlsConfig reads the CA and client certificate for a TLS broker URL; nil for a plain one.
func tlsConfig(o Options) (*tls.Config, error) {
	u, err := url.Parse(o.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqtt: broker: %w", err)
	}
	switch u.Scheme {
	case "ssl", "mqtts", "wss", "tls":
	default:
		return nil, nil
	}
	cfg, err := tlsfiles.Client("", o.CA, o.ClientCert, o.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	return cfg, nil
}

// Topics returns the device's topic names.
func (c *Client) Topics() Topics { return c.topics }

// Commands delivers OTA commands. Read it promptly: when 16 are waiting, more are dropped
// (and counted), because paho's handler must never block.
func (c *Client) Commands() <-chan Command { return c.cmds }

// Event queues a lifecycle event (QoS 1) in the outbox.
func (c *Client) Event(payload []byte) error {
	_, err := c.o.Outbox.Enqueue(Message{Topic: c.topics.Events(), Payload: payload, QoS: 1})
	return err
}

// Contours queues a job's contour message (QoS 1) in the outbox.
func (c *Client) Contours(jobID string, payload []byte) error {
	if jobID == "" || strings.ContainsAny(jobID, "/+#\x00") {
		return fmt.Errorf("mqtt: job id %q is not one topic level", jobID)
	}
	_, err := c.o.Outbox.Enqueue(Message{Topic: c.topics.Contours(jobID), Payload: payload, QoS: 1})
	return err
}

// PublishHealth sends a health message (QoS 0, not retained, never queued: the next one
// replaces it). It waits at most a few seconds for the write.
func (c *Client) PublishHealth(payload []byte) error {
	if !c.Stats().Connected {
		return ErrNotConnected
	}
	tok := c.cl.Publish(c.topics.Health(), 0, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("mqtt: health: write timed out")
	}
	return tok.Error()
}

// SetOTAState sets the retained ota/state payload: published now when connected and again
// after every reconnect (the broker may have restarted without persistence).
func (c *Client) SetOTAState(payload []byte) {
	c.mu.Lock()
	c.otaState = bytes.Clone(payload)
	c.mu.Unlock()
	select {
	case c.state <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot for health telemetry.
func (c *Client) Stats() Stats {
	n, b := c.o.Outbox.Len()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.OutboxDepth, s.OutboxBytes = n, b
	return s
}

func (c *Client) fail(op string, err error) {
	c.mu.Lock()
	c.stats.LastError, c.stats.LastErrorAt = op+": "+err.Error(), time.Now()
	c.mu.Unlock()
	c.o.Logger.Warn("mqtt: "+op, "broker", c.o.Broker, "err", err)
}

func (c *Client) update(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}
