package preproc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The bounded pre-scan. suyashkumar/dicom allocates value buffers from the value length field
// before reading, so a hostile 4 GB length costs 4 GB of memory. Before the library sees a file,
// scanDataSet walks every element (sequences and items included) and checks that each defined
// length fits inside its container and the file, and records where the top-level pixel data is.

const maxDepth = 16

// pixelLoc says where a data set's top-level Pixel Data (7FE0,0010) value lies.
type pixelLoc struct {
	found        bool
	encapsulated bool
	offset       int64 // of the value (native) or of the first item (encapsulated)
	length       int64 // of the value (native) or of all items up to the delimiter (encapsulated)
}

type scanner struct {
	r        *bufio.Reader
	pos      int64
	bo       binary.ByteOrder
	implicit bool
	pixel    pixelLoc
	elements int
}

// scanDataSet walks n bytes of a data set from r in the given encoding.
func scanDataSet(r io.Reader, n int64, bo binary.ByteOrder, implicit bool) (pixelLoc, error) {
	s := &scanner{r: bufio.NewReaderSize(r, 32<<10), bo: bo, implicit: implicit}
	if err := s.walk(n, 0, false); err != nil {
		return pixelLoc{}, fmt.Errorf("%w: at byte %d: %w", ErrBadInstance, s.pos, err)
	}
	return s.pixel, nil
}

func (s *scanner) read(b []byte) error {
	k, err := io.ReadFull(s.r, b)
	s.pos += int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *scanner) skip(n int64) error {
	k, err := s.r.Discard(int(n))
	s.pos += int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *scanner) u16() (uint16, error) {
	var b [2]byte
	err := s.read(b[:])
	return s.bo.Uint16(b[:]), err
}

func (s *scanner) u32() (uint32, error) {
	var b [4]byte
	err := s.read(b[:])
	return s.bo.Uint32(b[:]), err
}

func (s *scanner) tag() (uint16, uint16, error) {
	g, err := s.u16()
	if err != nil {
		return 0, 0, err
	}
	e, err := s.u16()
	return g, e, err
}

// walk reads elements until end (a defined-length container), or an item delimiter when
// undefined is set.
func (s *scanner) walk(end int64, depth int, undefined bool) error {
	if depth > maxDepth {
		return fmt.Errorf("sequences nested deeper than %d", maxDepth)
	}
	for undefined || s.pos < end {
		if s.pos+8 > end {
			return fmt.Errorf("element header runs past its container (%d bytes left)", end-s.pos)
		}
		if s.elements++; s.elements > 1<<22 {
			return fmt.Errorf("more than %d elements", 1<<22)
		}
		g, e, err := s.tag()
		if err != nil {
			return err
		}
		if g == 0xFFFE {
			if _, err := s.u32(); err != nil {
				return err
			}
			if e == 0xE00D && undefined {
				return nil
			}
			return fmt.Errorf("unexpected delimiter (fffe,%04x)", e)
		}
		if err := s.element(end, depth, g, e); err != nil {
			return fmt.Errorf("(%04x,%04x): %w", g, e, err)
		}
	}
	if s.pos != end {
		return fmt.Errorf("container overrun by %d bytes", s.pos-end)
	}
	return nil
}

func (s *scanner) vrLength() (string, uint32, error) {
	if s.implicit {
		n, err := s.u32()
		return "", n, err
	}
	var b [2]byte
	if err := s.read(b[:]); err != nil {
		return "", 0, err
	}
	vr := string(b[:])
	if b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z' {
		return "", 0, fmt.Errorf("VR bytes %q", vr)
	}
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		if err := s.skip(2); err != nil {
			return "", 0, err
		}
		n, err := s.u32()
		return vr, n, err
	}
	n, err := s.u16()
	if n == 0xFFFF {
		return "", 0, fmt.Errorf("16-bit length 0xffff")
	}
	return vr, uint32(n), err
}

func (s *scanner) element(end int64, depth int, g, e uint16) error {
	vr, n, err := s.vrLength()
	if err != nil {
		return err
	}
	if s.implicit {
		vr = "UN"
		if info, err := tag.Find(tag.Tag{Group: g, Element: e}); err == nil {
			vr = info.VRs[0]
		}
	}
	isPixel := depth == 0 && g == 0x7FE0 && e == 0x0010
	if n == 0xFFFFFFFF {
		switch {
		case isPixel:
			s.pixel = pixelLoc{found: true, encapsulated: true, offset: s.pos}
			err := s.fragments(end)
			s.pixel.length = s.pos - s.pixel.offset
			return err
		case vr == "SQ" || vr == "UN":
			saved := s.implicit
			if vr == "UN" && !s.implicit {
				s.implicit = true // PS3.5 6.2.2: UN of undefined length holds implicit VR LE
				if s.bo != binary.LittleEndian {
					return fmt.Errorf("UN of undefined length in big endian")
				}
			}
			err := s.sequence(end, depth+1, -1)
			s.implicit = saved
			return err
		case vr == "OB" || vr == "OW":
			return s.fragments(end)
		}
		return fmt.Errorf("undefined length for VR %s", vr)
	}
	if int64(n) > end-s.pos {
		return fmt.Errorf("value of %d bytes, only %d left in its container", n, end-s.pos)
	}
	if isPixel {
		s.pixel = pixelLoc{found: true, offset: s.pos, length: int64(n)}
	}
	if vr == "SQ" {
		return s.sequence(s.pos+int64(n), depth+1, s.pos+int64(n))
	}
	return s.skip(int64(n))
}

// sequence walks items until seqEnd (defined length) or a sequence delimiter (seqEnd < 0).
func (s *scanner) sequence(end int64, depth int, seqEnd int64) error {
	if depth > maxDepth {
		return fmt.Errorf("sequences nested deeper than %d", maxDepth)
	}
	for seqEnd < 0 || s.pos < seqEnd {
		limit := end
		if seqEnd >= 0 {
			limit = seqEnd
		}
		if s.pos+8 > limit {
			return fmt.Errorf("item header runs past its sequence")
		}
		g, e, err := s.tag()
		if err != nil {
			return err
		}
		n, err := s.u32()
		if err != nil {
			return err
		}
		switch {
		case g == 0xFFFE && e == 0xE0DD && seqEnd < 0:
			return nil
		case g == 0xFFFE && e == 0xE000 && n == 0xFFFFFFFF:
			if err := s.walk(limit, depth, true); err != nil {
				return err
			}
		case g == 0xFFFE && e == 0xE000:
			if int64(n) > limit-s.pos {
				return fmt.Errorf("item of %d bytes, only %d left", n, limit-s.pos)
			}
			if err := s.walk(s.pos+int64(n), depth, false); err != nil {
				return err
			}
		default:
			return fmt.Errorf("(%04x,%04x) inside a sequence", g, e)
		}
	}
	if s.pos != seqEnd {
		return fmt.Errorf("sequence overrun by %d bytes", s.pos-seqEnd)
	}
	return nil
}

// fragments skips the items of an encapsulated value up to its sequence delimiter.
func (s *scanner) fragments(end int64) error {
	for {
		if s.pos+8 > end {
			return fmt.Errorf("fragment header runs past the data set")
		}
		g, e, err := s.tag()
		if err != nil {
			return err
		}
		n, err := s.u32()
		if err != nil {
			return err
		}
		switch {
		case g == 0xFFFE && e == 0xE0DD:
			return nil
		case g == 0xFFFE && e == 0xE000 && int64(n) <= end-s.pos:
			if err := s.skip(int64(n)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("bad fragment (%04x,%04x) of %d bytes", g, e, n)
		}
	}
}
