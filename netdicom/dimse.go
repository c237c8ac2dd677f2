package netdicom

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Command fields (PS3.7 E.1).
const (
	cStoreRQ  uint16 = 0x0001
	cStoreRSP uint16 = 0x8001
	cEchoRQ   uint16 = 0x0030
	cEchoRSP  uint16 = 0x8030
)

// Command set element numbers in group 0000.
const (
	tagAffectedSOPClass   uint16 = 0x0002
	tagCommandField       uint16 = 0x0100
	tagMessageID          uint16 = 0x0110
	tagMessageIDResponded uint16 = 0x0120
	tagMoveDestination    uint16 = 0x0600
	tagPriority           uint16 = 0x0700
	tagDataSetType        uint16 = 0x0800
	tagStatus             uint16 = 0x0900
	tagErrorComment       uint16 = 0x0902
	tagAffectedSOPInst    uint16 = 0x1000
	tagMoveOriginatorAE   uint16 = 0x1030
	tagMoveOriginatorID   uint16 = 0x1031
)

const (
	noDataSet uint16 = 0x0101
	// maxCommandSet bounds a reassembled command set; real ones are a few hundred bytes.
	maxCommandSet = 64 << 10
)

// command is a decoded DIMSE command set: element number to raw value.
type command struct {
	elems map[uint16][]byte
}

// decodeCommand parses an Implicit VR Little Endian group-0000 command set.
func decodeCommand(b []byte) (command, error) {
	c := command{elems: map[uint16][]byte{}}
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return c, malformed("command element header truncated at offset %d", off)
		}
		group, elem := binary.LittleEndian.Uint16(b[off:]), binary.LittleEndian.Uint16(b[off+2:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		if group != 0 {
			return c, malformed("command set element (%04x,%04x) outside group 0000", group, elem)
		}
		if uint64(n) > uint64(len(b)-off-8) {
			return c, malformed("command element (0000,%04x) length %d exceeds the %d bytes left", elem, n, len(b)-off-8)
		}
		c.elems[elem] = b[off+8 : off+8+int(n)]
		off += 8 + int(n)
	}
	if _, ok := c.us(tagCommandField); !ok {
		return c, malformed("command set without a valid command field")
	}
	return c, nil
}

func (c command) us(elem uint16) (uint16, bool) {
	v, ok := c.elems[elem]
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.LittleEndian.Uint16(v), true
}

func (c command) str(elem uint16) string { return strings.TrimRight(string(c.elems[elem]), " \x00") }

func (c command) field() uint16     { v, _ := c.us(tagCommandField); return v }
func (c command) hasDataSet() bool  { v, ok := c.us(tagDataSetType); return ok && v != noDataSet }
func (c command) messageID() uint16 { v, _ := c.us(tagMessageID); return v }

// commandBuilder encodes a command set; elements may be added in any order.
type commandBuilder struct {
	elems map[uint16][]byte
}

func newCommand(field uint16) *commandBuilder {
	b := &commandBuilder{elems: map[uint16][]byte{}}
	return b.us(tagCommandField, field)
}

func (b *commandBuilder) us(elem, v uint16) *commandBuilder {
	b.elems[elem] = binary.LittleEndian.AppendUint16(nil, v)
	return b
}

// uid sets a UI value, padded to even length with NUL as PS3.5 requires.
func (b *commandBuilder) uid(elem uint16, v string) *commandBuilder {
	if len(v)%2 == 1 {
		v += "\x00"
	}
	b.elems[elem] = []byte(v)
	return b
}

// text sets a text value, padded to even length with a space.
func (b *commandBuilder) text(elem uint16, v string) *commandBuilder {
	if len(v)%2 == 1 {
		v += " "
	}
	b.elems[elem] = []byte(v)
	return b
}

// bytes encodes the command set with its group length first.
func (b *commandBuilder) bytes() []byte {
	keys := slices.Sorted(func(yield func(uint16) bool) {
		for k := range b.elems {
			if !yield(k) {
				return
			}
		}
	})
	var body []byte
	for _, k := range keys {
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint16(body, k)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(b.elems[k])))
		body = append(body, b.elems[k]...)
	}
	out := make([]byte, 0, 12+len(body))
	out = append(out, 0, 0, 0, 0, 4, 0, 0, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

func (c command) String() string {
	return fmt.Sprintf("command 0x%04x msg %d", c.field(), c.messageID())
}
