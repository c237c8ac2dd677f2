package mqtt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Message is one publication.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// An outbox file is: magic "MLMQ", version 1, flags (QoS in bits 0-1, retained in bit 2),
// topic length (uint16 BE), topic, payload length (uint32 BE), payload, CRC-32C of all before.
// The checksum catches a file damaged on disk; the rename already rules out a torn write.
const (
	recordMagic   = "MLMQ\x01"
	recordHeader  = len(recordMagic) + 1 + 2 // magic, version, flags, topic length
	maxTopicBytes = 65535
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks an outbox file that cannot be read back.
var errBadRecord = errors.New("mqtt: bad outbox record")

func encodeRecord(m Message) []byte {
	b := make([]byte, 0, recordHeader+len(m.Topic)+4+len(m.Payload)+4)
	b = append(b, recordMagic...)
	flags := m.QoS & 3
	if m.Retained {
		flags |= 4
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Topic)))
	b = append(b, m.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Payload)))
	b = append(b, m.Payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeRecord reads a record from b. Lengths are checked against len(b) before use, so nothing
// is allocated from a length field; the payload aliases b.
func decodeRecord(b []byte) (Message, error) {
	if len(b) < recordHeader+4+4 || string(b[:len(recordMagic)]) != recordMagic {
		return Message{}, fmt.Errorf("%w: no header", errBadRecord)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return Message{}, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	flags := body[len(recordMagic)]
	if flags&^7 != 0 || flags&3 == 3 {
		return Message{}, fmt.Errorf("%w: flags %#x", errBadRecord, flags)
	}
	rest := body[recordHeader:]
	tl := int(binary.BigEndian.Uint16(body[recordHeader-2:]))
	if tl == 0 || tl+4 > len(rest) {
		return Message{}, fmt.Errorf("%w: topic length %d", errBadRecord, tl)
	}
	topic, rest := string(rest[:tl]), rest[tl:]
	if pl := binary.BigEndian.Uint32(rest); uint64(pl) != uint64(len(rest)-4) {
		return Message{}, fmt.Errorf("%w: payload length %d, %d bytes left", errBadRecord, pl, len(rest)-4)
	}
	m := Message{Topic: topic, Payload: rest[4:], QoS: flags & 3, Retained: flags&4 != 0}
	if err := checkTopic(m.Topic); err != nil {
		return Message{}, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	return m, nil
}

// checkTopic refuses what a broker would refuse in a PUBLISH topic.
func checkTopic(t string) error {
	switch {
	case t == "" || len(t) > maxTopicBytes:
		return errors.New("topic must be 1 to 65535 bytes")
	case strings.ContainsAny(t, "+#\x00"):
		return fmt.Errorf("topic %q holds a wildcard or NUL", t)
	}
	return nil
}
