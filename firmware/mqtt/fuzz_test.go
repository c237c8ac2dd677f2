package mqtt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeRecord feeds damaged outbox files to the decoder: no panic, and whatever decodes
// encodes back to the same bytes (the format has one spelling per message).
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(Message{Topic: "midline/v1/s/d/events", Payload: []byte(`{"message_id":"d:1"}`), QoS: 1}))
	f.Add(encodeRecord(Message{Topic: "t", QoS: 2, Retained: true}))
	seeds, _ := filepath.Glob("testdata/*.msg")
	for _, name := range seeds {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("MLMQ\x01\x01\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			t.Skip()
		}
		m, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := encodeRecord(m); !bytes.Equal(again, b) {
			t.Fatalf("decode then encode changed the record:\n%q\n%q", b, again)
		}
	})
}
