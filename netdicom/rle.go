package netdicom

import (
	"encoding/binary"
	"fmt"
)

// RLE Lossless (PS3.5 Annex G) decoding. The receiver stores RLE data sets as received; the
// image pipeline calls DecodeRLEFrame for each frame's fragment.

// maxRLEFrame bounds one decoded frame (a 4096x4096 frame of 3 samples of 32 bits is 192 MiB).
const maxRLEFrame = 256 << 20

// DecodeRLEFrame decodes one RLE Lossless fragment holding one frame of rows x cols pixels with
// samples samples of bitsAllocated bits, into native little-endian bytes (samples interleaved,
// as PlanarConfiguration 0). It allocates the frame only when the fragment can hold it.
func DecodeRLEFrame(frag []byte, rows, cols, samples, bitsAllocated int) ([]byte, error) {
	if bitsAllocated%8 != 0 || bitsAllocated == 0 || bitsAllocated > 32 || samples < 1 || samples > 3 || rows < 1 || cols < 1 {
		return nil, fmt.Errorf("netdicom: RLE: unsupported frame %dx%d, %d samples of %d bits", rows, cols, samples, bitsAllocated)
	}
	bytesPer := bitsAllocated / 8
	nseg := samples * bytesPer
	pixels := rows * cols
	if len(frag) < 64 {
		return nil, fmt.Errorf("netdicom: RLE: fragment of %d bytes has no header", len(frag))
	}
	if got := int(binary.LittleEndian.Uint32(frag)); got != nseg {
		return nil, fmt.Errorf("netdicom: RLE: %d segments, want %d", got, nseg)
	}
	// A PackBits pair of bytes yields at most 128: a fragment cannot hold more, whatever the
	// data set's Rows and Columns claim, so nothing larger is allocated.
	if pixels > 64*len(frag) || pixels*nseg > maxRLEFrame {
		return nil, fmt.Errorf("netdicom: RLE: %dx%d frame cannot come from a %d-byte fragment", rows, cols, len(frag))
	}
	out := make([]byte, pixels*nseg)
	seg := make([]byte, 0, pixels)
	for s := range nseg {
		start := int(binary.LittleEndian.Uint32(frag[4+4*s:]))
		end := len(frag)
		if s+1 < nseg {
			end = int(binary.LittleEndian.Uint32(frag[8+4*s:]))
		}
		if start < 64 || end > len(frag) || start > end {
			return nil, fmt.Errorf("netdicom: RLE: segment %d spans [%d, %d) of %d bytes", s, start, end, len(frag))
		}
		var err error
		if seg, err = unpackBits(seg[:0], frag[start:end], pixels); err != nil {
			return nil, fmt.Errorf("netdicom: RLE: segment %d: %w", s, err)
		}
		// Segment order is sample by sample, most significant byte first (G.2).
		sample, msb := s/bytesPer, s%bytesPer
		off := sample*bytesPer + (bytesPer - 1 - msb)
		for i, b := range seg {
			out[i*nseg+off] = b
		}
	}
	return out, nil
}

// unpackBits decodes a PackBits segment into dst, which must end exactly at want bytes;
// trailing padding in the segment is allowed.
func unpackBits(dst, src []byte, want int) ([]byte, error) {
	for i := 0; i < len(src) && len(dst) < want; {
		n := int(int8(src[i]))
		i++
		switch {
		case n >= 0:
			if i+n+1 > len(src) || len(dst)+n+1 > want {
				return nil, fmt.Errorf("literal run of %d overflows", n+1)
			}
			dst = append(dst, src[i:i+n+1]...)
			i += n + 1
		case n == -128:
		default:
			if i >= len(src) || len(dst)+1-n > want {
				return nil, fmt.Errorf("replicate run of %d overflows", 1-n)
			}
			for range 1 - n {
				dst = append(dst, src[i])
			}
			i++
		}
	}
	if len(dst) != want {
		return nil, fmt.Errorf("decoded %d bytes, want %d", len(dst), want)
	}
	return dst, nil
}
