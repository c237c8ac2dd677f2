package mqtt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/midline-rt/midline/internal/atomicfile"
)

// Errors Enqueue returns; callers branch on them.
var (
	// ErrOutboxFull means the outbox holds OutboxOptions.MaxMessages or MaxBytes already: the
	// broker has been away for long. The caller decides (keep the result on disk, raise an alarm).
	ErrOutboxFull = errors.New("mqtt: outbox full")
	// ErrTooLarge means one message exceeds OutboxOptions.MaxPayload.
	ErrTooLarge = errors.New("mqtt: message too large for the outbox")
	// ErrNoMessageID means the payload is not a JSON object with a non-empty message_id, the
	// dedupe key of docs/contracts.md ("MQTT delivery").
	ErrNoMessageID = errors.New("mqtt: payload has no message_id")
)

// OutboxOptions configure an Outbox.
type OutboxOptions struct {
	Dir         string // state_dir/outbox/mqtt
	MaxMessages int    // mqtt.outbox_max_messages; 0: 10000
	MaxBytes    int64  // mqtt.outbox_max_bytes (payload and topic bytes); 0: 256 MiB
	MaxPayload  int    // largest payload; 0: 16 MiB (never above MaxBytes)
	NoFsync     bool   // benchmarks only: entries are not durable
	Logger      *slog.Logger
}

func (o OutboxOptions) withDefaults() OutboxOptions {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 10000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 16 << 20
	}
	o.MaxPayload = int(min(int64(o.MaxPayload), o.MaxBytes))
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Entry is a message waiting in the outbox; Seq orders entries (and so each topic's messages)
// and survives restarts in the file name.
type Entry struct {
	Seq uint64
	Message
}

// Outbox is the durable queue of QoS 1 messages (events and contours). Each message is one file
// written crash-safely (temp, fsync, rename, folder fsync) before Enqueue returns, named by its
// sequence number, and removed after the broker acknowledged it. Payloads are never logged.
type Outbox struct {
	o      OutboxOptions
	notify chan struct{}

	mu    sync.Mutex
	seqs  []uint64         // pending, ascending
	sizes map[uint64]int64 // seq -> topic+payload bytes
	bytes int64
	next  uint64
}

const recordExt = ".msg"

// OpenOutbox opens (creating) the outbox folder, removes temp files a crash left behind, moves
// unreadable entries to Dir/bad (kept for a human, never sent) and indexes the rest.
func OpenOutbox(o OutboxOptions) (*Outbox, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(filepath.Join(o.Dir, "bad"), 0o750); err != nil {
		return nil, fmt.Errorf("mqtt: outbox: %w", err)
	}
	ob := &Outbox{o: o, notify: make(chan struct{}, 1), sizes: map[uint64]int64{}, next: 1}
	names, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("mqtt: outbox: %w", err)
	}
	for _, de := range names {
		if err := ob.index(de); err != nil {
			return nil, err
		}
	}
	slices.Sort(ob.seqs)
	if n := len(ob.seqs); n > 0 {
		ob.next = ob.seqs[n-1] + 1
		o.Logger.Info("mqtt outbox: pending messages from before the restart", "count", n, "bytes", ob.bytes)
	}
	return ob, nil
}

// index adds one folder entry found at open.
func (ob *Outbox) index(de os.DirEntry) error {
	name, path := de.Name(), filepath.Join(ob.o.Dir, de.Name())
	switch {
	case de.IsDir():
		return nil
	case strings.HasPrefix(name, ".tmp-"):
		return os.Remove(path)
	}
	seq, ok := parseName(name)
	if !ok {
		ob.o.Logger.Warn("mqtt outbox: ignoring a foreign file", "file", name)
		return nil
	}
	m, err := readRecord(path, ob.o.MaxPayload)
	if err != nil {
		ob.o.Logger.Error("mqtt outbox: unreadable entry moved aside", "file", name, "err", err)
		return os.Rename(path, filepath.Join(ob.o.Dir, "bad", name))
	}
	ob.seqs = append(ob.seqs, seq)
	ob.sizes[seq] = int64(len(m.Topic) + len(m.Payload))
	ob.bytes += ob.sizes[seq]
	return nil
}

func recordName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, recordExt) }

func parseName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, recordExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil && seq > 0
}

// readRecord reads one entry, bounded by the largest entry the outbox writes.
func readRecord(path string, maxPayload int) (Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return Message{}, err
	}
	defer f.Close()
	limit := int64(recordHeader + maxTopicBytes + 4 + maxPayload + 4)
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return Message{}, err
	}
	if int64(len(b)) > limit {
		return Message{}, fmt.Errorf("%w: larger than %d bytes", errBadRecord, limit)
	}
	return decodeRecord(b)
}

// Enqueue makes m durable and returns its sequence number. Only QoS 1 and 2 messages belong
// here (QoS 0 has no acknowledgement to wait for), and the payload must carry a message_id.
func (ob *Outbox) Enqueue(m Message) (uint64, error) {
	if err := ob.check(m); err != nil {
		return 0, err
	}
	size := int64(len(m.Topic) + len(m.Payload))
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if len(ob.seqs) >= ob.o.MaxMessages || ob.bytes+size > ob.o.MaxBytes {
		return 0, fmt.Errorf("%w: %d messages, %d bytes", ErrOutboxFull, len(ob.seqs), ob.bytes)
	}
	// Writing under the lock keeps files appearing in sequence order, so the drain never
	// sees seq n+1 before n.
	// A failed write burns its number: the file may exist after all (a failed folder fsync),
	// and must never be overwritten by the next message.
	seq := ob.next
	ob.next++
	path := filepath.Join(ob.o.Dir, recordName(seq))
	if err := atomicfile.WriteWith(path, encodeRecord(m), atomicfile.Options{Mode: 0o600, NoSync: ob.o.NoFsync}); err != nil {
		return 0, fmt.Errorf("mqtt: outbox: write %s: %w", recordName(seq), err)
	}
	ob.seqs = append(ob.seqs, seq)
	ob.sizes[seq] = size
	ob.bytes += size
	ob.o.Logger.Debug("mqtt outbox: queued", "seq", seq, "topic", m.Topic, "bytes", len(m.Payload))
	select {
	case ob.notify <- struct{}{}:
	default:
	}
	return seq, nil
}

func (ob *Outbox) check(m Message) error {
	if m.QoS != 1 && m.QoS != 2 {
		return fmt.Errorf("mqtt: outbox takes QoS 1 or 2, not %d", m.QoS)
	}
	if err := checkTopic(m.Topic); err != nil {
		return fmt.Errorf("mqtt: %w", err)
	}
	if len(m.Payload) > ob.o.MaxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Payload), ob.o.MaxPayload)
	}
	var id struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(m.Payload, &id); err != nil || id.MessageID == "" {
		return ErrNoMessageID
	}
	return nil
}

// Oldest returns the entry to publish next; ok is false when the outbox is empty. An entry that
// has become unreadable is moved aside and the next one returned.
func (ob *Outbox) Oldest() (e Entry, ok bool, err error) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for len(ob.seqs) > 0 {
		seq := ob.seqs[0]
		m, err := readRecord(filepath.Join(ob.o.Dir, recordName(seq)), ob.o.MaxPayload)
		if err == nil {
			return Entry{Seq: seq, Message: m}, true, nil
		}
		if !errors.Is(err, errBadRecord) {
			return Entry{}, false, fmt.Errorf("mqtt: outbox: %w", err)
		}
		ob.o.Logger.Error("mqtt outbox: unreadable entry moved aside", "seq", seq, "err", err)
		if err := os.Rename(filepath.Join(ob.o.Dir, recordName(seq)), filepath.Join(ob.o.Dir, "bad", recordName(seq))); err != nil {
			return Entry{}, false, fmt.Errorf("mqtt: outbox: %w", err)
		}
		ob.drop(seq)
	}
	return Entry{}, false, nil
}

// Remove deletes a delivered entry. The folder is not fsynced: should the removal be lost in a
// power cut, the entry is sent once more, which QoS 1 and the dedupe key allow.
func (ob *Outbox) Remove(seq uint64) error {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if err := os.Remove(filepath.Join(ob.o.Dir, recordName(seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mqtt: outbox: %w", err)
	}
	ob.drop(seq)
	return nil
}

func (ob *Outbox) drop(seq uint64) {
	if i, found := slices.BinarySearch(ob.seqs, seq); found {
		ob.seqs = slices.Delete(ob.seqs, i, i+1)
		ob.bytes -= ob.sizes[seq]
		delete(ob.sizes, seq)
	}
}

// Len returns the number of pending entries and their topic and payload bytes.
func (ob *Outbox) Len() (n int, bytes int64) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return len(ob.seqs), ob.bytes
}

// Ready receives a value after an Enqueue; the drain waits on it when the outbox is empty.
func (ob *Outbox) Ready() <-chan struct{} { return ob.notify }
