package netdicom

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// ClientOptions configure the C-ECHO and C-STORE SCU.
type ClientOptions struct {
	CallingAE string        // our AE title (--aet); default "MIDLINE"
	CalledAE  string        // the peer's AE title (--aec); default "ANY-SCP"
	MaxPDU    uint32        // what we accept; 0: DefaultMaxPDU
	TLS       *tls.Config   // nil: plain TCP
	Timeout   time.Duration // for the connection and each answer; 0: 30 s
}

// defaultClientTimeout bounds the SCU's connection and each answer when ClientOptions give none.
const defaultClientTimeout = 30 * time.Second

func (o ClientOptions) withDefaults() ClientOptions {
	if o.CallingAE == "" {
		o.CallingAE = "MIDLINE"
	}
	if o.CalledAE == "" {
		o.CalledAE = "ANY-SCP"
	}
	if o.MaxPDU == 0 {
		o.MaxPDU = DefaultMaxPDU
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultClientTimeout
	}
	return o
}

// Association is the requester's side of an association. One goroutine at a time uses it:
// DIMSE over it is synchronous (asynchronous operations window 1).
type Association struct {
	c        *ulConn
	o        ClientOptions
	accepted map[[2]string]byte // (abstract syntax, transfer syntax) -> context ID
	msgID    uint16
	stop     func() bool
	done     bool
	cmd      []byte
}

// ErrNoContext is returned when the peer accepted no presentation context for an instance's
// SOP class and transfer syntax.
var ErrNoContext = errors.New("netdicom: no accepted presentation context")

// Dial opens an association proposing the given contexts (IDs are assigned here).
func Dial(ctx context.Context, addr string, o ClientOptions, proposed []PresentationContext) (*Association, error) {
	o = o.withDefaults()
	if len(proposed) == 0 || len(proposed) > 128 {
		return nil, fmt.Errorf("netdicom: %d presentation contexts proposed, want 1 to 128", len(proposed))
	}
	d := net.Dialer{Timeout: o.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netdicom: dial %s: %w", addr, err)
	}
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		hctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("netdicom: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	a := &Association{c: newULConn(nc, o.MaxPDU, o.Timeout), o: o, accepted: map[[2]string]byte{}}
	a.stop = context.AfterFunc(ctx, func() { nc.Close() })
	if err := a.associate(proposed); err != nil {
		a.stop()
		nc.Close()
		return nil, err
	}
	return a, nil
}

func (a *Association) associate(proposed []PresentationContext) error {
	rq := &assocPDU{ProtocolVersion: 1, CalledAE: a.o.CalledAE, CallingAE: a.o.CallingAE, AppContext: applicationContextUID,
		MaxPDU: a.o.MaxPDU, ImplClassUID: ImplementationClassUID, ImplVersion: ImplementationVersion}
	byID := map[byte]PresentationContext{}
	for i, pc := range proposed {
		pc.ID = byte(2*i + 1)
		rq.Contexts = append(rq.Contexts, pc)
		byID[pc.ID] = pc
	}
	if err := a.c.writeRaw(rq.encode(false)); err != nil {
		return err
	}
	h, body, err := a.c.readPDU(a.o.Timeout)
	if err != nil {
		return fmt.Errorf("netdicom: read association answer: %w", err)
	}
	switch h.Type {
	case pduAssociateRJ:
		return &RejectError{Result: body[1], Source: body[2], Reason: body[3]}
	case pduAbort:
		return &AbortError{Source: body[2], Reason: body[3]}
	case pduAssociateAC:
	default:
		return malformed("PDU type 0x%02x in answer to A-ASSOCIATE-RQ", h.Type)
	}
	ac, err := decodeAssoc(body, true)
	if err != nil {
		return err
	}
	for _, pc := range ac.Contexts {
		p, ok := byID[pc.ID]
		if pc.Result != pcAccepted || !ok || len(pc.TransferSyntax) != 1 {
			continue
		}
		a.accepted[[2]string{p.AbstractSyntax, pc.TransferSyntax[0]}] = pc.ID
	}
	a.c.peerMax = ac.MaxPDU
	if ac.MaxPDU != 0 && ac.MaxPDU < minPeerPDU {
		a.abort()
		return malformed("peer's maximum PDU length %d is below %d", ac.MaxPDU, minPeerPDU)
	}
	if len(a.accepted) == 0 {
		a.abort()
		return fmt.Errorf("%w: the peer refused every proposed context", ErrNoContext)
	}
	return nil
}

// Accepted reports whether the peer accepted a context for this SOP class and transfer syntax.
func (a *Association) Accepted(sopClass, ts string) bool {
	_, ok := a.accepted[[2]string{sopClass, ts}]
	return ok
}

// Echo sends a C-ECHO-RQ and returns the answer's status.
func (a *Association) Echo() (Status, error) {
	id, ok := a.contextFor(VerificationUID)
	if !ok {
		return 0, fmt.Errorf("%w for Verification", ErrNoContext)
	}
	a.msgID++
	cmd := newCommand(cEchoRQ).us(tagMessageID, a.msgID).uid(tagAffectedSOPClass, VerificationUID).us(tagDataSetType, noDataSet)
	if err := a.c.sendMessage(id, cmd.bytes(), nil); err != nil {
		return 0, err
	}
	return a.response(cEchoRSP)
}

func (a *Association) contextFor(abstract string) (byte, bool) {
	for k, id := range a.accepted {
		if k[0] == abstract {
			return id, true
		}
	}
	return 0, false
}

// Store sends one data set, encoded in transfer syntax ts, read from data.
func (a *Association) Store(sopClass, sopInst, ts string, data io.Reader) (Status, error) {
	id, ok := a.accepted[[2]string{sopClass, ts}]
	if !ok {
		return 0, fmt.Errorf("%w for %s in %s", ErrNoContext, sopClass, ts)
	}
	a.msgID++
	cmd := newCommand(cStoreRQ).us(tagMessageID, a.msgID).uid(tagAffectedSOPClass, sopClass).
		uid(tagAffectedSOPInst, sopInst).us(tagPriority, 0).us(tagDataSetType, 0x0000)
	if err := a.c.sendMessage(id, cmd.bytes(), data); err != nil {
		return 0, err
	}
	return a.response(cStoreRSP)
}

// StoreFile sends a Part 10 file's data set as it is in the file.
func (a *Association) StoreFile(path string) (Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("netdicom: store: %w", err)
	}
	defer f.Close()
	meta, err := ReadFileMeta(f)
	if err != nil {
		return 0, fmt.Errorf("netdicom: store %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if a.Accepted(meta.SOPClassUID, meta.TransferSyntax) {
		return a.Store(meta.SOPClassUID, meta.SOPInstanceUID, meta.TransferSyntax, io.NewSectionReader(f, meta.DataOffset, st.Size()-meta.DataOffset))
	}
	fallback := ""
	for _, ts := range uncompressedFallback {
		if a.Accepted(meta.SOPClassUID, ts) {
			fallback = ts
			break
		}
	}
	switch {
	case fallback == "":
		return 0, fmt.Errorf("%w: %s: the peer accepts %s neither in %s nor uncompressed", ErrNoContext, path, meta.SOPClassUID, tsName(meta.TransferSyntax))
	case !transcodable(meta.TransferSyntax):
		return 0, fmt.Errorf("%w: %s: the peer does not accept %s and Midline cannot decompress it to send it uncompressed", ErrNoContext, path, tsName(meta.TransferSyntax))
	}
	data, err := transcode(path, fallback)
	if err != nil {
		return 0, err
	}
	return a.Store(meta.SOPClassUID, meta.SOPInstanceUID, fallback, bytes.NewReader(data))
}

// tsName names a transfer syntax for people: its name where Midline knows it, else its UID.
func tsName(uid string) string {
	if t, ok := lookupTransferSyntax(uid); ok {
		return t.Name + " (" + uid + ")"
	}
	return "transfer syntax " + uid
}

// response reads PDUs until the command of the answer to the last request is complete.
func (a *Association) response(want uint16) (Status, error) {
	a.cmd = a.cmd[:0]
	for {
		h, body, err := a.c.readPDU(a.o.Timeout)
		if err != nil {
			return 0, fmt.Errorf("netdicom: read answer: %w", err)
		}
		switch h.Type {
		case pduPData:
		case pduAbort:
			a.done = true
			return 0, &AbortError{Source: body[2], Reason: body[3]}
		default:
			a.abort()
			return 0, malformed("PDU type 0x%02x while waiting for an answer", h.Type)
		}
		pdvs, err := decodePData(body, a.c.pdvs)
		if err != nil {
			a.abort()
			return 0, err
		}
		a.c.pdvs = pdvs
		for _, p := range pdvs {
			if !p.Command || len(a.cmd)+len(p.Data) > maxCommandSet {
				a.abort()
				return 0, malformed("unexpected data in an answer")
			}
			a.cmd = append(a.cmd, p.Data...)
			if p.Last {
				return a.status(want)
			}
		}
	}
}

func (a *Association) status(want uint16) (Status, error) {
	cmd, err := decodeCommand(a.cmd)
	if err != nil {
		a.abort()
		return 0, err
	}
	id, _ := cmd.us(tagMessageIDResponded)
	st, ok := cmd.us(tagStatus)
	if cmd.field() != want || id != a.msgID || !ok {
		a.abort()
		return 0, malformed("answer 0x%04x to message %d, want 0x%04x to %d", cmd.field(), id, want, a.msgID)
	}
	if c := cmd.str(tagErrorComment); c != "" && Status(st) != StatusSuccess {
		return Status(st), &StatusError{Status: Status(st), Comment: c}
	}
	if !Status(st).Success() {
		return Status(st), &StatusError{Status: Status(st)}
	}
	return Status(st), nil
}

// StatusError is a failure status answered by the peer.
type StatusError struct {
	Status  Status
	Comment string
}

func (e *StatusError) Error() string {
	if e.Comment != "" {
		return fmt.Sprintf("netdicom: peer answered %s: %s", e.Status, e.Comment)
	}
	return fmt.Sprintf("netdicom: peer answered %s", e.Status)
}

// Release ends the association in order (A-RELEASE-RQ, wait for A-RELEASE-RP) and closes it.
func (a *Association) Release() error {
	if a.done {
		return nil
	}
	a.done = true
	defer a.close()
	if err := a.c.writeRaw(encodeRelease(pduReleaseRQ)); err != nil {
		return err
	}
	for {
		h, _, err := a.c.readPDU(a.o.Timeout)
		if err != nil {
			return fmt.Errorf("netdicom: wait for A-RELEASE-RP: %w", err)
		}
		if h.Type == pduReleaseRP {
			return nil
		}
		if h.Type == pduAbort {
			return &AbortError{}
		}
	}
}

// Abort ends the association at once with A-ABORT.
func (a *Association) Abort() {
	if !a.done {
		a.abort()
	}
}

func (a *Association) abort() {
	a.done = true
	a.c.abort(abortSourceUser, 0)
	a.close()
}

func (a *Association) close() {
	a.stop()
	a.c.nc.Close()
}
