package preproc

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestConvertStoredValues(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	for _, tc := range []struct {
		name         string
		bits, stored int
		signed       bool
		bo           binary.ByteOrder
		raw          []byte
		slope, icpt  float64
		want         []float32
	}{
		{"uint8", 8, 8, false, le, []byte{0, 7, 255}, 1, 0, []float32{0, 7, 255}},
		{"uint16 le", 16, 16, false, le, []byte{1, 0, 0, 1, 255, 255}, 1, 0, []float32{1, 256, 65535}},
		{"uint16 be", 16, 16, false, be, []byte{0, 1, 1, 0, 255, 255}, 1, 0, []float32{1, 256, 65535}},
		{"int16", 16, 16, true, le, []byte{0xFF, 0xFF, 0x00, 0x80, 0xFF, 0x7F}, 1, 0, []float32{-1, -32768, 32767}},
		{"12 of 16 bits, junk above", 16, 12, false, le, []byte{0xFF, 0xFF, 0x00, 0xF8}, 1, 0, []float32{4095, 2048}},
		{"signed 12 of 16 bits", 16, 12, true, le, []byte{0xFF, 0x0F, 0x00, 0x08, 0xFF, 0x07}, 1, 0, []float32{-1, -2048, 2047}},
		{"uint32", 32, 32, false, le, []byte{1, 0, 0, 0, 0, 0, 1, 0}, 1, 0, []float32{1, 65536}},
		{"int32", 32, 32, true, le, []byte{0xFE, 0xFF, 0xFF, 0xFF}, 1, 0, []float32{-2}},
		{"rescaled in float32", 16, 16, false, le, []byte{3, 0, 10, 0}, 0.1, -1024, []float32{float32(float32(3)*float32(0.1)) - 1024, float32(float32(10)*float32(0.1)) - 1024}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &instance{bits: tc.bits, stored: tc.stored, signed: tc.signed}
			got := make([]float32, len(tc.want))
			if err := in.convert(got, tc.raw, tc.bo, tc.slope, tc.icpt); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	in := &instance{bits: 16, stored: 16}
	if err := in.convert(make([]float32, 1), []byte{1, 0}, le, 1e300, 0); !errors.Is(err, ErrBadValues) {
		t.Errorf("slope beyond float32: %v", err)
	}
}
