package preproc

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/midline-rt/midline/netdicom"
)

// readPixels fills v.Pixels slice by slice; frames are in slice order. Each file is opened once
// and only one frame's raw bytes are held at a time.
func readPixels(ctx context.Context, v *Volume, frames []frameInfo) error {
	slots := map[*instance][]int{}
	var order []*instance
	for k, f := range frames {
		if slots[f.inst] == nil {
			order = append(order, f.inst)
		}
		slots[f.inst] = append(slots[f.inst], k)
	}
	var buf []byte
	for _, in := range order {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if buf, err = in.readFrames(v, frames, slots[in], buf); err != nil {
			return fmt.Errorf("%s: %w", in.path, err)
		}
	}
	return nil
}

func (in *instance) readFrames(v *Volume, frames []frameInfo, ks []int, buf []byte) ([]byte, error) {
	r, n, meta, closeFn, err := dataSet(in.path, in.lim)
	if err != nil {
		return buf, err
	}
	defer closeFn()
	if meta.TransferSyntax != in.ts || n != in.dsLen {
		return buf, fmt.Errorf("%w: file changed between reads", ErrBadInstance)
	}
	ds := io.NewSectionReader(r, meta.DataOffset, n)
	bo, _, _, rle, _ := syntax(in.ts)
	frameBytes := in.rows * in.cols * in.bits / 8
	var frags [][2]int64
	if rle {
		if frags, err = in.fragments(ds, len(in.frames)); err != nil {
			return buf, err
		}
		bo = binary.LittleEndian // DecodeRLEFrame returns little-endian samples
	}
	for _, k := range ks {
		f := frames[k]
		var raw []byte
		if rle {
			fr := frags[f.index]
			if fr[1] > int64(2*frameBytes+4096) {
				return buf, fmt.Errorf("%w: RLE fragment of %d bytes for a frame of %d", ErrBadInstance, fr[1], frameBytes)
			}
			buf = grow(buf, int(fr[1]))
			if _, err := ds.ReadAt(buf, fr[0]); err != nil {
				return buf, fmt.Errorf("%w: RLE fragment: %w", ErrBadInstance, err)
			}
			if raw, err = netdicom.DecodeRLEFrame(buf, in.rows, in.cols, 1, in.bits); err != nil {
				return buf, fmt.Errorf("%w: frame %d: %w", ErrBadInstance, f.index+1, err)
			}
		} else {
			buf = grow(buf, frameBytes)
			if _, err := ds.ReadAt(buf, in.pixel.offset+int64(f.index)*int64(frameBytes)); err != nil {
				return buf, fmt.Errorf("%w: pixel data: %w", ErrBadInstance, err)
			}
			raw = buf
		}
		if err := in.convert(v.Slice(k), raw, bo, f.slope, f.intercept); err != nil {
			return buf, fmt.Errorf("frame %d: %w", f.index+1, err)
		}
	}
	return buf, nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// fragments lists (offset, length) of the frames of encapsulated pixel data, skipping the
// Basic Offset Table. RLE Lossless holds each frame in exactly one fragment (PS3.5 A.4.2).
func (in *instance) fragments(ds io.ReaderAt, nf int) ([][2]int64, error) {
	var out [][2]int64
	pos, end := in.pixel.offset, in.pixel.offset+in.pixel.length
	var hdr [8]byte
	for first := true; pos+8 <= end; first = false {
		if _, err := ds.ReadAt(hdr[:], pos); err != nil {
			return nil, fmt.Errorf("%w: fragment header: %w", ErrBadInstance, err)
		}
		g, e, n := binary.LittleEndian.Uint16(hdr[:]), binary.LittleEndian.Uint16(hdr[2:]), int64(binary.LittleEndian.Uint32(hdr[4:]))
		pos += 8
		if g == 0xFFFE && e == 0xE0DD {
			break
		}
		if g != 0xFFFE || e != 0xE000 || n > end-pos {
			return nil, fmt.Errorf("%w: bad fragment (%04x,%04x) of %d bytes", ErrBadInstance, g, e, n)
		}
		if !first {
			if len(out) == nf {
				return nil, fmt.Errorf("%w: more than %d fragments for %d frames", ErrBadInstance, nf, nf)
			}
			out = append(out, [2]int64{pos, n})
		}
		pos += n
	}
	if len(out) != nf {
		return nil, fmt.Errorf("%w: %d fragments for %d frames", ErrBadInstance, len(out), nf)
	}
	return out, nil
}

// convert turns one frame of stored values into real values: stored x slope + intercept in
// float32, as the Python reference computes it (numpy float32 arithmetic).
func (in *instance) convert(dst []float32, raw []byte, bo binary.ByteOrder, slope, intercept float64) error {
	s, c := float32(slope), float32(intercept)
	if math.IsInf(float64(s), 0) || math.IsInf(float64(c), 0) {
		return fmt.Errorf("%w: rescale %g, %g overflows float32", ErrBadValues, slope, intercept)
	}
	mask := uint32(1)<<in.stored - 1
	if in.stored == 32 {
		mask = math.MaxUint32
	}
	sign := uint32(1) << (in.stored - 1)
	step := in.bits / 8
	for i := range dst {
		var u uint32
		switch step {
		case 1:
			u = uint32(raw[i])
		case 2:
			u = uint32(bo.Uint16(raw[2*i:]))
		default:
			u = bo.Uint32(raw[4*i:])
		}
		u &= mask
		var x float32
		if in.signed && u&sign != 0 {
			x = float32(int64(u) - int64(mask) - 1)
		} else {
			x = float32(u)
		}
		// The conversion keeps the product rounded to float32 (no fused multiply-add).
		y := float32(x*s) + c
		if math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
			return fmt.Errorf("%w: stored value %v x %g + %g is %v", ErrBadValues, x, slope, intercept, y)
		}
		dst[i] = y
	}
	return nil
}
