package netdicom

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// ErrBadDataSet marks a data set whose encoding cannot be followed.
var ErrBadDataSet = errors.New("netdicom: unreadable data set")

func badDataSet(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadDataSet, fmt.Sprintf(format, a...))
}

// HeadInfo holds the few attributes the receiver needs from a data set, read from its start
// without decoding the rest.
type HeadInfo struct {
	SOPClassUID         string
	SOPInstanceUID      string
	StudyInstanceUID    string
	SeriesInstanceUID   string
	Modality            string
	InstanceNumber      int // 0 when absent
	ImagesInAcquisition int // 0 when absent
	NumberOfFrames      int // 0 when absent
}

const (
	maxNesting      = 32
	maxWantedLen    = 1024
	maxInflatedHead = 64 << 20
)

// headReader walks top-level elements of a data set in one transfer syntax.
type headReader struct {
	r        *bufio.Reader
	bo       binary.ByteOrder
	implicit bool
	info     HeadInfo
	scratch  [8]byte
	// raw, when set, receives the value bytes of the top-level elements keep selects instead of
	// HeadInfo; the walk ends after the tag last.
	raw  map[uint32][]byte
	keep func(tag uint32) bool
	last uint32
}

// ReadHead reads the identifying attributes of a data set encoded in transfer syntax ts from r,
// stopping after Number of Frames (0028,0008) or at the end. It allocates nothing sized by the
// data, skips sequences without decoding them, and checks only what it walks.
func ReadHead(r io.Reader, tsUID string) (HeadInfo, error) {
	h, err := walkHead(r, tsUID, nil)
	if h == nil {
		return HeadInfo{}, err
	}
	return h.info, err
}

// maxRawValue bounds one value ReadRawValues keeps (an LT holds at most 10240 characters).
const maxRawValue = 64 << 10

// ReadRawValues returns the value bytes, exactly as encoded, of the top-level elements of a data
// set (in transfer syntax ts) that keep selects (tags as group<<16 | element), walking no
// further than the tag last. Text keeps the bytes of its own character set: the RT Structure
// Set writer copies a source's Patient and Study attributes with them.
func ReadRawValues(r io.Reader, tsUID string, keep func(tag uint32) bool, last uint32) (map[uint32][]byte, error) {
	raw := map[uint32][]byte{}
	_, err := walkHead(r, tsUID, &headReader{raw: raw, keep: keep, last: last})
	return raw, err
}

// walkHead walks a data set's top-level elements with h's settings (nil: HeadInfo's).
func walkHead(r io.Reader, tsUID string, h *headReader) (*headReader, error) {
	ts, ok := lookupTransferSyntax(tsUID)
	if !ok {
		return nil, badDataSet("transfer syntax %q not supported", tsUID)
	}
	if ts.deflated {
		fr := flate.NewReader(r)
		defer fr.Close()
		// A deflate bomb could make skipping cost gigabytes of inflation; the attributes read
		// here come in the first few kilobytes of any real data set.
		r = io.LimitReader(fr, maxInflatedHead)
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	if h == nil {
		h = &headReader{last: 0x00280008}
	}
	h.r, h.bo, h.implicit = br, binary.LittleEndian, ts.implicit
	if ts.big {
		h.bo = binary.BigEndian
	}
	return h, h.walk(0, false)
}

var errStop = errors.New("stop")

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

// walk reads elements until the end of input (top level), an item delimiter (inside items), or
// a tag past the last wanted one (top level).
func (h *headReader) walk(depth int, inItem bool) error {
	if depth > maxNesting {
		return badDataSet("sequences nested deeper than %d", maxNesting)
	}
	for {
		group, elem, err := h.tag()
		if err == io.EOF && !inItem {
			return nil
		}
		if err != nil {
			return badDataSet("element tag: %v", noEOF(err))
		}
		if group == 0xFFFE {
			if elem == 0xE00D && inItem {
				_, err := h.u32() // item delimitation length
				return err
			}
			return badDataSet("unexpected delimiter (fffe,%04x)", elem)
		}
		if !inItem && uint32(group)<<16|uint32(elem) > h.last {
			return nil
		}
		if err := h.element(depth, inItem, group, elem); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

func (h *headReader) element(depth int, inItem bool, group, elem uint16) error {
	vr, n, err := h.vrLength(group, elem)
	if err != nil {
		return err
	}
	if n == 0xFFFFFFFF {
		if vr != "SQ" && vr != "UN" && !(h.implicit && vr == "") {
			if group == 0x7FE0 {
				return errStop // encapsulated pixel data: nothing wanted lies past it
			}
			return badDataSet("undefined length for (%04x,%04x) %s", group, elem, vr)
		}
		saved := h.implicit
		if vr == "UN" {
			h.implicit = true // PS3.5 6.2.2: UN of undefined length holds implicit VR LE
		}
		err := h.sequence(depth + 1)
		h.implicit = saved
		return err
	}
	if !inItem && h.raw != nil && h.keep(uint32(group)<<16|uint32(elem)) {
		if n > maxRawValue {
			return badDataSet("(%04x,%04x) value of %d bytes", group, elem, n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(h.r, b); err != nil {
			return badDataSet("(%04x,%04x) value: %v", group, elem, noEOF(err))
		}
		h.raw[uint32(group)<<16|uint32(elem)] = b
		return nil
	}
	if !inItem && h.raw == nil && wanted(group, elem) {
		return h.readWanted(n, group, elem)
	}
	return h.skip(int64(n))
}

// sequence skips the items of an undefined-length sequence.
func (h *headReader) sequence(depth int) error {
	for {
		group, elem, err := h.tag()
		if err != nil {
			return badDataSet("sequence item tag: %v", noEOF(err))
		}
		n, err := h.u32()
		if err != nil {
			return badDataSet("sequence item length: %v", noEOF(err))
		}
		switch {
		case group == 0xFFFE && elem == 0xE0DD:
			return nil
		case group == 0xFFFE && elem == 0xE000 && n == 0xFFFFFFFF:
			if err := h.walk(depth, true); err != nil {
				return err
			}
		case group == 0xFFFE && elem == 0xE000:
			if err := h.skip(int64(n)); err != nil {
				return err
			}
		default:
			return badDataSet("(%04x,%04x) inside a sequence", group, elem)
		}
	}
}

// wanted reports whether a top-level tag is one HeadInfo keeps.
func wanted(group, elem uint16) bool {
	switch uint32(group)<<16 | uint32(elem) {
	case 0x00080016, 0x00080018, 0x00080060, 0x0020000D, 0x0020000E, 0x00200013, 0x00201002, 0x00280008:
		return true
	}
	return false
}

func (h *headReader) readWanted(n uint32, group, elem uint16) error {
	if n > maxWantedLen {
		return badDataSet("(%04x,%04x) value of %d bytes", group, elem, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(h.r, b); err != nil {
		return badDataSet("(%04x,%04x) value: %v", group, elem, noEOF(err))
	}
	v := strings.Trim(string(b), " \x00")
	switch uint32(group)<<16 | uint32(elem) {
	case 0x00080016:
		h.info.SOPClassUID = v
	case 0x00080018:
		h.info.SOPInstanceUID = v
	case 0x00080060:
		h.info.Modality = v
	case 0x0020000D:
		h.info.StudyInstanceUID = v
	case 0x0020000E:
		h.info.SeriesInstanceUID = v
	case 0x00200013:
		h.info.InstanceNumber = atoiIS(v)
	case 0x00201002:
		h.info.ImagesInAcquisition = atoiIS(v)
	case 0x00280008:
		h.info.NumberOfFrames = atoiIS(v)
	}
	return nil
}

// atoiIS reads the first value of an IS; malformed or negative values count as absent.
func atoiIS(s string) int {
	s, _, _ = strings.Cut(s, `\`)
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return 0
	}
	return v
}

func (h *headReader) tag() (uint16, uint16, error) {
	b := h.scratch[:4]
	if _, err := io.ReadFull(h.r, b); err != nil {
		return 0, 0, err
	}
	return h.bo.Uint16(b), h.bo.Uint16(b[2:]), nil
}

func (h *headReader) u32() (uint32, error) {
	b := h.scratch[:4]
	if _, err := io.ReadFull(h.r, b); err != nil {
		return 0, err
	}
	return h.bo.Uint32(b), nil
}

// vrLength reads the VR (explicit syntaxes) and value length after a tag.
func (h *headReader) vrLength(group, elem uint16) (string, uint32, error) {
	if h.implicit || group == 0xFFFE {
		n, err := h.u32()
		if err != nil {
			return "", 0, badDataSet("(%04x,%04x) length: %v", group, elem, noEOF(err))
		}
		return "", n, nil
	}
	b := h.scratch[:4]
	if _, err := io.ReadFull(h.r, b); err != nil {
		return "", 0, badDataSet("(%04x,%04x) VR: %v", group, elem, noEOF(err))
	}
	vr := string(b[:2])
	if b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z' {
		return "", 0, badDataSet("(%04x,%04x) has VR bytes %q", group, elem, vr)
	}
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		n, err := h.u32()
		if err != nil {
			return "", 0, badDataSet("(%04x,%04x) length: %v", group, elem, noEOF(err))
		}
		return vr, n, nil
	}
	return vr, uint32(h.bo.Uint16(b[2:])), nil
}

func (h *headReader) skip(n int64) error {
	for n > 0 {
		step := min(n, 1<<30)
		d, err := h.r.Discard(int(step))
		n -= int64(d)
		if err != nil {
			return badDataSet("skipping a value: %v", noEOF(err))
		}
	}
	return nil
}

// FileMeta is the part of a Part 10 file meta information group Midline uses.
type FileMeta struct {
	SOPClassUID    string
	SOPInstanceUID string
	TransferSyntax string
	SourceAE       string
	// DataOffset is where the data set starts in the file.
	DataOffset int64
}

const maxMetaGroup = 64 << 10

// appendFileMeta appends a preamble, "DICM" and an Explicit VR Little Endian group 0002.
func appendFileMeta(b []byte, m FileMeta) []byte {
	var g []byte
	g = appendExplicit(g, 0x0001, "OB", []byte{0, 1})
	g = appendExplicit(g, 0x0002, "UI", uidBytes(m.SOPClassUID))
	g = appendExplicit(g, 0x0003, "UI", uidBytes(m.SOPInstanceUID))
	g = appendExplicit(g, 0x0010, "UI", uidBytes(m.TransferSyntax))
	g = appendExplicit(g, 0x0012, "UI", uidBytes(ImplementationClassUID))
	g = appendExplicit(g, 0x0013, "SH", textBytes(ImplementationVersion))
	if m.SourceAE != "" {
		g = appendExplicit(g, 0x0016, "AE", textBytes(m.SourceAE))
	}
	b = append(b, make([]byte, 128)...)
	b = append(b, "DICM"...)
	b = appendExplicit(b, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(len(g))))
	return append(b, g...)
}

func appendExplicit(b []byte, elem uint16, vr string, v []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x0002)
	b = binary.LittleEndian.AppendUint16(b, elem)
	b = append(b, vr...)
	if vr == "OB" {
		b = append(b, 0, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}

func uidBytes(s string) []byte {
	if len(s)%2 == 1 {
		return append([]byte(s), 0)
	}
	return []byte(s)
}

func textBytes(s string) []byte {
	if len(s)%2 == 1 {
		return append([]byte(s), ' ')
	}
	return []byte(s)
}

// ReadFileMeta reads the preamble and file meta group of a Part 10 file. It reads group 0002
// element by element (a missing group length is tolerated) and never more than 64 KiB of it.
func ReadFileMeta(r io.Reader) (FileMeta, error) {
	br := bufio.NewReader(io.LimitReader(r, 132+maxMetaGroup))
	var pre [132]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return FileMeta{}, fmt.Errorf("netdicom: read preamble: %w", noEOF(err))
	}
	if !bytes.Equal(pre[128:], []byte("DICM")) {
		return FileMeta{}, fmt.Errorf("%w: no DICM prefix", ErrBadDataSet)
	}
	m := FileMeta{DataOffset: 132}
	for {
		peek, err := br.Peek(8)
		if err != nil || binary.LittleEndian.Uint16(peek) != 0x0002 {
			break // the data set starts here (or the file ends)
		}
		elem, vr := binary.LittleEndian.Uint16(peek[2:]), string(peek[4:6])
		hdr, n := 8, int(binary.LittleEndian.Uint16(peek[6:]))
		if vr == "OB" || vr == "OW" || vr == "UN" || vr == "UT" || vr == "SQ" {
			p, err := br.Peek(12)
			if err != nil {
				return m, badDataSet("file meta element (0002,%04x): %v", elem, noEOF(err))
			}
			hdr, n = 12, int(binary.LittleEndian.Uint32(p[8:]))
		}
		if n > maxMetaGroup || n < 0 {
			return m, badDataSet("file meta element (0002,%04x) of %d bytes", elem, n)
		}
		if _, err := br.Discard(hdr); err != nil {
			return m, badDataSet("file meta: %v", noEOF(err))
		}
		v := make([]byte, n)
		if _, err := io.ReadFull(br, v); err != nil {
			return m, badDataSet("file meta element (0002,%04x): %v", elem, noEOF(err))
		}
		m.DataOffset += int64(hdr + n)
		s := strings.Trim(string(v), " \x00")
		switch elem {
		case 0x0002:
			m.SOPClassUID = s
		case 0x0003:
			m.SOPInstanceUID = s
		case 0x0010:
			m.TransferSyntax = s
		case 0x0016:
			m.SourceAE = s
		}
	}
	if m.TransferSyntax == "" || m.SOPClassUID == "" || m.SOPInstanceUID == "" {
		return m, badDataSet("file meta lacks SOP class, SOP instance or transfer syntax")
	}
	return m, nil
}
