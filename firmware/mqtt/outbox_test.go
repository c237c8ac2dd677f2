package mqtt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func openOutbox(t *testing.T, o OutboxOptions) *Outbox {
	t.Helper()
	ob, err := OpenOutbox(o)
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

func msg(topic, id string) Message {
	return Message{Topic: topic, Payload: payload(id), QoS: 1}
}

func TestOutboxOrderSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, OutboxOptions{Dir: dir})
	for _, id := range []string{"a", "b", "c"} {
		if _, err := ob.Enqueue(msg("t/"+id, id)); err != nil {
			t.Fatal(err)
		}
	}
	e, ok, err := ob.Oldest()
	if err != nil || !ok || e.Topic != "t/a" {
		t.Fatalf("Oldest = %+v, %v, %v", e, ok, err)
	}
	if err := ob.Remove(e.Seq); err != nil {
		t.Fatal(err)
	}
	// A crash leaves a temp file; reopening drops it and keeps b, c in order, and new entries
	// come after them.
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600)
	ob2 := openOutbox(t, OutboxOptions{Dir: dir})
	seq, err := ob2.Enqueue(msg("t/d", "d"))
	if err != nil {
		t.Fatal(err)
	}
	if seq != 4 {
		t.Errorf("sequence after reopen = %d, want 4", seq)
	}
	var got []string
	for {
		e, ok, err := ob2.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, e.Topic)
		ob2.Remove(e.Seq)
	}
	if want := "t/b t/c t/d"; joinStrings(got) != want {
		t.Errorf("order = %q, want %q", joinStrings(got), want)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("temp file survived reopen: %v", err)
	}
}

func TestOutboxRefuses(t *testing.T) {
	ob := openOutbox(t, OutboxOptions{Dir: t.TempDir(), MaxMessages: 2, MaxBytes: 1 << 20, MaxPayload: 100})
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"QoS 0", Message{Topic: "t", Payload: payload("x"), QoS: 0}, nil},
		{"wildcard topic", msg("t/#", "x"), nil},
		{"no message_id", Message{Topic: "t", Payload: []byte(`{"schema":"x"}`), QoS: 1}, ErrNoMessageID},
		{"not JSON", Message{Topic: "t", Payload: []byte("hello"), QoS: 1}, ErrNoMessageID},
		{"too large", Message{Topic: "t", Payload: bytes.Repeat([]byte("x"), 101), QoS: 1}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ob.Enqueue(tt.m)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Enqueue = %v, want %v", err, tt.want)
			}
		})
	}
	for i := range 2 {
		if _, err := ob.Enqueue(msg("t", string(rune('a'+i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.Enqueue(msg("t", "c")); !errors.Is(err, ErrOutboxFull) {
		t.Errorf("third message in an outbox of 2: %v, want ErrOutboxFull", err)
	}
}

func TestOutboxByteBound(t *testing.T) {
	ob := openOutbox(t, OutboxOptions{Dir: t.TempDir(), MaxBytes: 100})
	if _, err := ob.Enqueue(msg("t", "a-long-enough-identifier-to-take-space")); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Enqueue(msg("t", "another-long-enough-identifier-here")); !errors.Is(err, ErrOutboxFull) {
		t.Errorf("over MaxBytes: %v, want ErrOutboxFull", err)
	}
}

func TestOutboxMovesDamagedEntriesAside(t *testing.T) {
	dir := t.TempDir()
	ob := openOutbox(t, OutboxOptions{Dir: dir})
	first, _ := ob.Enqueue(msg("t/a", "a"))
	ob.Enqueue(msg("t/b", "b"))
	path := filepath.Join(dir, recordName(first))
	b, _ := os.ReadFile(path)
	b[len(b)-6] ^= 0xff // damage the payload: the checksum no longer matches
	os.WriteFile(path, b, 0o600)

	ob2 := openOutbox(t, OutboxOptions{Dir: dir})
	e, ok, err := ob2.Oldest()
	if err != nil || !ok || e.Topic != "t/b" {
		t.Fatalf("Oldest after damage = %+v, %v, %v", e, ok, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad", recordName(first))); err != nil {
		t.Errorf("damaged entry not kept in bad/: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Topic: "a/b", Payload: []byte(`{"message_id":"x"}`), QoS: 1},
		{Topic: "a", Payload: nil, QoS: 2, Retained: true},
	} {
		got, err := decodeRecord(encodeRecord(m))
		if err != nil || got.Topic != m.Topic || !bytes.Equal(got.Payload, m.Payload) || got.QoS != m.QoS || got.Retained != m.Retained {
			t.Errorf("round trip of %+v = %+v, %v", m, got, err)
		}
	}
}

func TestTopics(t *testing.T) {
	tp := NewTopics("midline/v1", "s", "d", "g")
	for got, want := range map[string]string{
		tp.Status():          "midline/v1/s/d/status",
		tp.Health():          "midline/v1/s/d/health",
		tp.Events():          "midline/v1/s/d/events",
		tp.Contours("j1"):    "midline/v1/s/d/contours/j1",
		tp.OTAState():        "midline/v1/s/d/ota/state",
		tp.OTACommands()[1]:  "midline/v1/s/group/g/ota/cmd",
		MessageID("d", "j1"): "d:j1",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if n := len(NewTopics("p", "s", "d", "").OTACommands()); n != 1 {
		t.Errorf("without a group: %d command topics", n)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	for _, j := range []float64{0, 0.999} {
		c := &Client{o: Options{MinBackoff: 1, MaxBackoff: 100, Jitter: func() float64 { return j }}}
		for n := 1; n < 70; n++ {
			d := c.backoff(n)
			ceil := int64(100)
			if n < 8 {
				ceil = min(int64(1)<<(n-1), 100)
			}
			if int64(d) > ceil || int64(d) < ceil/2 {
				t.Fatalf("backoff(%d) with jitter %g = %d, want within [%d, %d]", n, j, d, ceil/2, ceil)
			}
		}
	}
}

func joinStrings(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

func TestReadsCommittedRecord(t *testing.T) {
	m, err := readRecord("testdata/contours.msg", 1<<20)
	if err != nil || m.Topic != "midline/v1/demo-site/demo-box-01/contours/job-1" || m.QoS != 1 || m.Retained {
		t.Fatalf("readRecord = %+v, %v", m, err)
	}
}
