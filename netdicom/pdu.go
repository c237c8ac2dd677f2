package netdicom

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 9.3).
const (
	pduAssociateRQ byte = 0x01
	pduAssociateAC byte = 0x02
	pduAssociateRJ byte = 0x03
	pduPData       byte = 0x04
	pduReleaseRQ   byte = 0x05
	pduReleaseRP   byte = 0x06
	pduAbort       byte = 0x07
)

// Limits on what a peer may make us read or allocate.
const (
	// maxAssociatePDU bounds A-ASSOCIATE-RQ/AC bodies; 128 contexts with 10 syntaxes each fit.
	maxAssociatePDU = 256 << 10
	// MinPDU and MaxPDULimit bound the maximum PDU length Midline advertises or honours.
	MinPDU      = 4096
	MaxPDULimit = 4 << 20
	// DefaultMaxPDU is advertised when dicom.max_pdu is unset.
	DefaultMaxPDU = 256 << 10
	// minPeerPDU is the smallest maximum length a peer may ask us to send in (0: unlimited);
	// below it a peer could make us fragment without end.
	minPeerPDU = 1024
)

// ErrMalformedPDU marks bytes from a peer that do not form a valid PDU; the association is
// aborted.
var ErrMalformedPDU = errors.New("netdicom: malformed PDU")

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedPDU, fmt.Sprintf(format, a...))
}

// pduHeader is the fixed six-byte PDU header.
type pduHeader struct {
	Type   byte
	Length uint32
}

// readPDUHeader reads a PDU header and checks its length against the limit for its type before
// anything is allocated from it.
func readPDUHeader(r io.Reader, maxPData uint32) (pduHeader, error) {
	var b [6]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return pduHeader{}, err
	}
	h := pduHeader{Type: b[0], Length: binary.BigEndian.Uint32(b[2:])}
	var limit uint32
	switch h.Type {
	case pduAssociateRQ, pduAssociateAC:
		limit = maxAssociatePDU
	case pduAssociateRJ, pduReleaseRQ, pduReleaseRP, pduAbort:
		if h.Length != 4 {
			return h, malformed("PDU type 0x%02x with length %d, want 4", h.Type, h.Length)
		}
		return h, nil
	case pduPData:
		limit = maxPData
	default:
		return h, malformed("unknown PDU type 0x%02x", h.Type)
	}
	if h.Length > limit {
		return h, malformed("PDU type 0x%02x length %d exceeds limit %d", h.Type, h.Length, limit)
	}
	return h, nil
}

// readPDU reads one whole PDU into buf (grown only up to the checked length) and returns its body.
func readPDU(r io.Reader, maxPData uint32, buf []byte) (pduHeader, []byte, error) {
	h, err := readPDUHeader(r, maxPData)
	if err != nil {
		return h, nil, err
	}
	if uint32(cap(buf)) < h.Length {
		buf = make([]byte, h.Length)
	}
	body := buf[:h.Length]
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, fmt.Errorf("netdicom: read PDU body (type 0x%02x, %d bytes): %w", h.Type, h.Length, noEOF(err))
	}
	return h, body, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func appendPDUHeader(b []byte, typ byte, length int) []byte {
	b = append(b, typ, 0)
	return binary.BigEndian.AppendUint32(b, uint32(length))
}

// PresentationContext is one proposed (RQ) or answered (AC) presentation context.
type PresentationContext struct {
	ID             byte
	AbstractSyntax string   // RQ only
	TransferSyntax []string // RQ: proposed, in order of preference; AC: the one accepted
	Result         byte     // AC only (PS3.8 9.3.3.2)
}

// Presentation context results.
const (
	pcAccepted             byte = 0
	pcUserRejected         byte = 1
	pcNoReason             byte = 2
	pcAbstractNotSupported byte = 3
	pcTransferNotSupported byte = 4
)

// RoleSelection is an SCP/SCU role selection sub-item (PS3.7 D.3.3.4).
type RoleSelection struct {
	SOPClass string
	SCU, SCP bool
}

// assocPDU is the content of an A-ASSOCIATE-RQ or -AC.
type assocPDU struct {
	ProtocolVersion  uint16
	CalledAE         string
	CallingAE        string
	AppContext       string
	Contexts         []PresentationContext
	MaxPDU           uint32 // 0: unlimited
	ImplClassUID     string
	ImplVersion      string
	AsyncOps         bool // an asynchronous operations window sub-item was present
	MaxOpsInvoked    uint16
	MaxOpsPerformed  uint16
	Roles            []RoleSelection
	otherUserItems   int // unrecognised user sub-items (extended negotiation, user identity), ignored
	sawAppContext    bool
	sawUserInfo      bool
	presentationSeen map[byte]bool
}

// item reader over a bounded byte slice.
type items struct {
	b   []byte
	off int
}

// next returns the next item's type and value; the item header is 4 bytes (type, reserved,
// 16-bit length).
func (it *items) next() (byte, []byte, error) {
	if len(it.b)-it.off < 4 {
		return 0, nil, malformed("item header truncated at offset %d", it.off)
	}
	typ := it.b[it.off]
	n := int(binary.BigEndian.Uint16(it.b[it.off+2:]))
	it.off += 4
	if len(it.b)-it.off < n {
		return 0, nil, malformed("item 0x%02x length %d exceeds the %d bytes left", typ, n, len(it.b)-it.off)
	}
	v := it.b[it.off : it.off+n]
	it.off += n
	return typ, v, nil
}

func (it *items) done() bool { return it.off >= len(it.b) }

// decodeAssoc decodes the body of an A-ASSOCIATE-RQ (ac=false) or -AC (ac=true).
func decodeAssoc(body []byte, ac bool) (*assocPDU, error) {
	if len(body) < 68 {
		return nil, malformed("associate PDU body of %d bytes, want at least 68", len(body))
	}
	a := &assocPDU{
		ProtocolVersion:  binary.BigEndian.Uint16(body),
		CalledAE:         trimAE(body[4:20]),
		CallingAE:        trimAE(body[20:36]),
		presentationSeen: map[byte]bool{},
	}
	it := items{b: body[68:]}
	for !it.done() {
		typ, v, err := it.next()
		if err != nil {
			return nil, err
		}
		switch {
		case typ == 0x10:
			a.AppContext, a.sawAppContext = trimUID(v), true
		case typ == 0x20 && !ac, typ == 0x21 && ac:
			pc, err := decodePresentation(v, ac)
			if err != nil {
				return nil, err
			}
			if a.presentationSeen[pc.ID] {
				return nil, malformed("presentation context ID %d repeated", pc.ID)
			}
			a.presentationSeen[pc.ID] = true
			a.Contexts = append(a.Contexts, pc)
		case typ == 0x50:
			if err := a.decodeUserInfo(v); err != nil {
				return nil, err
			}
			a.sawUserInfo = true
		default:
			return nil, malformed("unexpected item 0x%02x in associate PDU", typ)
		}
	}
	if !a.sawAppContext {
		return nil, malformed("associate PDU without application context")
	}
	return a, nil
}

func decodePresentation(v []byte, ac bool) (PresentationContext, error) {
	if len(v) < 4 {
		return PresentationContext{}, malformed("presentation context item of %d bytes", len(v))
	}
	pc := PresentationContext{ID: v[0]}
	if ac {
		pc.Result = v[2]
	}
	if pc.ID%2 == 0 {
		return pc, malformed("presentation context ID %d is even", pc.ID)
	}
	it := items{b: v[4:]}
	for !it.done() {
		typ, sv, err := it.next()
		if err != nil {
			return pc, err
		}
		switch {
		case typ == 0x30 && !ac:
			if pc.AbstractSyntax != "" {
				return pc, malformed("presentation context %d has two abstract syntaxes", pc.ID)
			}
			pc.AbstractSyntax = trimUID(sv)
		case typ == 0x40:
			if len(pc.TransferSyntax) >= 64 {
				return pc, malformed("presentation context %d proposes more than 64 transfer syntaxes", pc.ID)
			}
			pc.TransferSyntax = append(pc.TransferSyntax, trimUID(sv))
		default:
			return pc, malformed("unexpected sub-item 0x%02x in presentation context %d", typ, pc.ID)
		}
	}
	if !ac && (pc.AbstractSyntax == "" || len(pc.TransferSyntax) == 0) {
		return pc, malformed("presentation context %d lacks an abstract or transfer syntax", pc.ID)
	}
	return pc, nil
}

func (a *assocPDU) decodeUserInfo(v []byte) error {
	it := items{b: v}
	for !it.done() {
		typ, sv, err := it.next()
		if err != nil {
			return err
		}
		switch typ {
		case 0x51:
			if len(sv) != 4 {
				return malformed("maximum length sub-item of %d bytes", len(sv))
			}
			a.MaxPDU = binary.BigEndian.Uint32(sv)
		case 0x52:
			a.ImplClassUID = trimUID(sv)
		case 0x53:
			if len(sv) != 4 {
				return malformed("asynchronous operations window of %d bytes", len(sv))
			}
			a.AsyncOps = true
			a.MaxOpsInvoked, a.MaxOpsPerformed = binary.BigEndian.Uint16(sv), binary.BigEndian.Uint16(sv[2:])
		case 0x54:
			if len(sv) < 4 {
				return malformed("role selection of %d bytes", len(sv))
			}
			n := int(binary.BigEndian.Uint16(sv))
			if len(sv) != n+4 {
				return malformed("role selection UID length %d in %d bytes", n, len(sv))
			}
			if len(a.Roles) >= 128 {
				return malformed("more than 128 role selections")
			}
			a.Roles = append(a.Roles, RoleSelection{SOPClass: trimUID(sv[2 : 2+n]), SCU: sv[2+n] == 1, SCP: sv[3+n] == 1})
		case 0x55:
			a.ImplVersion = strings.TrimRight(string(sv), " \x00")
		default:
			a.otherUserItems++
		}
	}
	return nil
}

// encode appends the whole PDU (header included).
func (a *assocPDU) encode(ac bool) []byte {
	typ, pcItem := pduAssociateRQ, byte(0x20)
	if ac {
		typ, pcItem = pduAssociateAC, 0x21
	}
	b := appendPDUHeader(nil, typ, 0)
	b = binary.BigEndian.AppendUint16(b, a.ProtocolVersion)
	b = append(b, 0, 0)
	b = appendAE(b, a.CalledAE)
	b = appendAE(b, a.CallingAE)
	b = append(b, make([]byte, 32)...)
	b = appendItem(b, 0x10, []byte(a.AppContext))
	for _, pc := range a.Contexts {
		var v []byte
		if ac {
			v = append(v, pc.ID, 0, pc.Result, 0)
		} else {
			v = append(v, pc.ID, 0, 0, 0)
			v = appendItem(v, 0x30, []byte(pc.AbstractSyntax))
		}
		for _, ts := range pc.TransferSyntax {
			v = appendItem(v, 0x40, []byte(ts))
		}
		b = appendItem(b, pcItem, v)
	}
	b = appendItem(b, 0x50, a.encodeUserInfo())
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)-6))
	return b
}

func (a *assocPDU) encodeUserInfo() []byte {
	v := appendItem(nil, 0x51, binary.BigEndian.AppendUint32(nil, a.MaxPDU))
	v = appendItem(v, 0x52, []byte(a.ImplClassUID))
	if a.AsyncOps {
		w := binary.BigEndian.AppendUint16(nil, a.MaxOpsInvoked)
		v = appendItem(v, 0x53, binary.BigEndian.AppendUint16(w, a.MaxOpsPerformed))
	}
	for _, r := range a.Roles {
		w := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClass)))
		w = append(w, r.SOPClass...)
		w = append(w, b2u8(r.SCU), b2u8(r.SCP))
		v = appendItem(v, 0x54, w)
	}
	if a.ImplVersion != "" {
		v = appendItem(v, 0x55, []byte(a.ImplVersion))
	}
	return v
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendItem(b []byte, typ byte, v []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

func appendAE(b []byte, ae string) []byte {
	var f [16]byte
	for i := range f {
		f[i] = ' '
	}
	copy(f[:], ae)
	return append(b, f[:]...)
}

func trimAE(b []byte) string  { return strings.Trim(string(b), " \x00") }
func trimUID(b []byte) string { return strings.TrimRight(string(b), " \x00") }

// Reject and abort codes (PS3.8 9.3.4, 9.3.8).
const (
	rjPermanent byte = 1
	rjTransient byte = 2

	rjSourceUser        byte = 1 // UL service-user
	rjSourceACSE        byte = 2 // UL service-provider, ACSE related
	rjSourcePresentaton byte = 3 // UL service-provider, presentation related

	rjNoReason             byte = 1
	rjAppContextNotSupport byte = 2
	rjCallingAENotKnown    byte = 3
	rjCalledAENotKnown     byte = 7
	rjProtocolVersion      byte = 2 // with rjSourceACSE
	rjTemporaryCongestion  byte = 1 // with rjSourcePresentaton
	rjLocalLimitExceeded   byte = 2 // with rjSourcePresentaton

	abortSourceUser     byte = 0
	abortSourceProvider byte = 2
	abortUnexpectedPDU  byte = 2
	abortUnrecognized   byte = 1
	abortInvalidParam   byte = 6
	abortNotSpecified   byte = 0
)

// RejectError is an A-ASSOCIATE-RJ received from, or sent to, a peer.
type RejectError struct{ Result, Source, Reason byte }

func (e *RejectError) Error() string {
	kind := "permanent"
	if e.Result == rjTransient {
		kind = "transient"
	}
	return fmt.Sprintf("netdicom: association rejected (%s, source %d, reason %d: %s)", kind, e.Source, e.Reason, rejectReason(e.Source, e.Reason))
}

// Transient reports whether the refusal may go away by itself (the peer is busy), so that the
// request is worth repeating later.
func (e *RejectError) Transient() bool { return e.Result == rjTransient }

func rejectReason(source, reason byte) string {
	switch {
	case source == rjSourceUser && reason == rjAppContextNotSupport:
		return "application context name not supported"
	case source == rjSourceUser && reason == rjCallingAENotKnown:
		return "calling AE title not recognized"
	case source == rjSourceUser && reason == rjCalledAENotKnown:
		return "called AE title not recognized"
	case source == rjSourceACSE && reason == rjProtocolVersion:
		return "protocol version not supported"
	case source == rjSourcePresentaton && reason == rjTemporaryCongestion:
		return "temporary congestion"
	case source == rjSourcePresentaton && reason == rjLocalLimitExceeded:
		return "local limit exceeded"
	}
	return "no reason given"
}

func encodeReject(e *RejectError) []byte {
	return append(appendPDUHeader(nil, pduAssociateRJ, 4), 0, e.Result, e.Source, e.Reason)
}

func encodeAbort(source, reason byte) []byte {
	return append(appendPDUHeader(nil, pduAbort, 4), 0, 0, source, reason)
}

func encodeRelease(typ byte) []byte { return append(appendPDUHeader(nil, typ, 4), 0, 0, 0, 0) }

// AbortError is an A-ABORT received from a peer.
type AbortError struct{ Source, Reason byte }

func (e *AbortError) Error() string {
	return fmt.Sprintf("netdicom: association aborted by peer (source %d, reason %d)", e.Source, e.Reason)
}

// pdv is one presentation data value item inside a P-DATA-TF PDU.
type pdv struct {
	ContextID byte
	Command   bool
	Last      bool
	Data      []byte
}

// decodePData splits a P-DATA-TF body into its PDVs, appending to pdvs (reused by the caller).
func decodePData(body []byte, pdvs []pdv) ([]pdv, error) {
	pdvs = pdvs[:0]
	for off := 0; off < len(body); {
		if len(body)-off < 6 {
			return nil, malformed("PDV header truncated at offset %d", off)
		}
		n := binary.BigEndian.Uint32(body[off:])
		if n < 2 || uint64(n) > uint64(len(body)-off-4) {
			return nil, malformed("PDV length %d at offset %d with %d bytes left", n, off, len(body)-off-4)
		}
		hdr := body[off+5]
		if hdr&^0x03 != 0 {
			return nil, malformed("PDV message control header 0x%02x", hdr)
		}
		pdvs = append(pdvs, pdv{ContextID: body[off+4], Command: hdr&1 != 0, Last: hdr&2 != 0, Data: body[off+6 : off+4+int(n)]})
		off += 4 + int(n)
	}
	if len(pdvs) == 0 {
		return nil, malformed("P-DATA-TF without a PDV")
	}
	return pdvs, nil
}
