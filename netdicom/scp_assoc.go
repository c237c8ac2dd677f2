package netdicom

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
)

type acceptedCtx struct {
	abstract string
	ts       string
}

// scpAssoc is the provider's side of one established association.
type scpAssoc struct {
	s       *Server
	c       *ulConn
	log     *slog.Logger
	id      uint64
	calling string
	ctxs    map[byte]acceptedCtx
	cmd     []byte
	cmdCtx  byte
	op      *incoming
	stored  int
}

// incoming is a request whose data set is arriving.
type incoming struct {
	ctxID    byte
	field    uint16
	msgID    uint16
	sopClass string
	sopInst  string
	status   Status
	comment  string
	pending  *Pending // nil: the data set is read and discarded
}

// maxInstanceBytes bounds one received data set (an explicit length cannot exceed 4 GiB
// either); a sender past it is aborted and the partial file removed.
const maxInstanceBytes = 4 << 30

// errCrash makes the association end without an answer, as a crash at a failpoint would.
var errCrash = errors.New("netdicom: failpoint hit, dropping the association")

// serve runs the association until release, abort or error; released reports an orderly end.
func (a *scpAssoc) serve() (released bool, err error) {
	for {
		h, body, err := a.c.readPDU(a.s.o.IdleTimeout)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, ErrMalformedPDU):
				a.c.abort(abortSourceProvider, abortInvalidParam)
			case errors.As(err, &ne) && ne.Timeout():
				a.c.abort(abortSourceProvider, abortNotSpecified)
			}
			return false, err
		}
		switch h.Type {
		case pduPData:
			if err := a.pdata(body); err != nil {
				if !errors.Is(err, errCrash) {
					a.c.abort(abortSourceProvider, abortInvalidParam)
				}
				return false, err
			}
		case pduReleaseRQ:
			return true, a.c.writeRaw(encodeRelease(pduReleaseRP))
		case pduAbort:
			return false, &AbortError{Source: body[2], Reason: body[3]}
		default:
			a.c.abort(abortSourceProvider, abortUnexpectedPDU)
			return false, malformed("unexpected PDU type 0x%02x in an association", h.Type)
		}
	}
}

func (a *scpAssoc) cleanup() {
	if a.op != nil && a.op.pending != nil {
		a.op.pending.Abort()
	}
	a.op = nil
}

func (a *scpAssoc) pdata(body []byte) error {
	pdvs, err := decodePData(body, a.c.pdvs)
	if err != nil {
		return err
	}
	a.c.pdvs = pdvs
	for _, p := range pdvs {
		if _, ok := a.ctxs[p.ContextID]; !ok {
			return malformed("PDV on presentation context %d, which is not accepted", p.ContextID)
		}
		if p.Command {
			err = a.commandPDV(p)
		} else {
			err = a.dataPDV(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *scpAssoc) commandPDV(p pdv) error {
	if a.op != nil {
		return malformed("command fragment while a data set is pending")
	}
	if len(a.cmd) > 0 && p.ContextID != a.cmdCtx {
		return malformed("command fragments on two presentation contexts")
	}
	if len(a.cmd)+len(p.Data) > maxCommandSet {
		return malformed("command set longer than %d bytes", maxCommandSet)
	}
	a.cmd, a.cmdCtx = append(a.cmd, p.Data...), p.ContextID
	if !p.Last {
		return nil
	}
	cmd, err := decodeCommand(a.cmd)
	a.cmd = a.cmd[:0]
	if err != nil {
		return err
	}
	return a.dispatch(cmd, p.ContextID)
}

func (a *scpAssoc) dataPDV(p pdv) error {
	if a.op == nil || p.ContextID != a.op.ctxID {
		return malformed("data set fragment without a request on context %d", p.ContextID)
	}
	if a.op.pending != nil {
		a.op.pending.Write(p.Data)
		if a.op.pending.n > maxInstanceBytes {
			return malformed("data set longer than %d bytes", int64(maxInstanceBytes))
		}
	}
	if p.Last {
		return a.finish()
	}
	return nil
}

func (a *scpAssoc) dispatch(cmd command, ctxID byte) error {
	ctx := a.ctxs[ctxID]
	op := &incoming{ctxID: ctxID, field: cmd.field(), msgID: cmd.messageID(),
		sopClass: cmd.str(tagAffectedSOPClass), sopInst: cmd.str(tagAffectedSOPInst)}
	switch op.field {
	case cEchoRQ:
		if cmd.hasDataSet() {
			return malformed("C-ECHO-RQ with a data set")
		}
		return a.respond(op, cEchoRSP, StatusSuccess)
	case cStoreRQ:
		if !cmd.hasDataSet() {
			return malformed("C-STORE-RQ without a data set")
		}
		a.prepareStore(op, ctx)
		a.op = op
		return nil
	}
	op.status, op.comment = StatusUnrecognizedOp, fmt.Sprintf("command 0x%04x not supported", op.field)
	if cmd.hasDataSet() {
		a.op = op
		return nil
	}
	return a.respond(op, op.field|0x8000, op.status)
}

// prepareStore decides, before a byte of the data set is written, whether it will be stored.
func (a *scpAssoc) prepareStore(op *incoming, ctx acceptedCtx) {
	sp := a.s.spool
	switch {
	case op.sopClass != ctx.abstract:
		op.status, op.comment = StatusSOPClassRefused, "SOP class differs from the presentation context"
	case !validUID(op.sopInst):
		op.status, op.comment = StatusCannotUnderstand, "invalid Affected SOP Instance UID"
	case !sp.HasSpace():
		op.status, op.comment = StatusOutOfResources, "disk space below the low watermark"
	default:
		p, err := sp.Begin(FileMeta{SOPClassUID: op.sopClass, SOPInstanceUID: op.sopInst, TransferSyntax: ctx.ts, SourceAE: a.calling})
		if err != nil {
			a.log.Error("netdicom: spool", "err", err)
			op.status, op.comment = StatusOutOfResources, "cannot open spool file"
			return
		}
		op.pending = p
	}
	if op.status != StatusSuccess {
		a.log.Warn("netdicom: C-STORE refused before storage", "status", op.status.String(), "why", op.comment)
	}
}

// finish completes a request once its whole data set has arrived.
func (a *scpAssoc) finish() error {
	op := a.op
	a.op = nil
	var inst Instance
	if op.pending != nil {
		var err error
		inst, op.status, err = op.pending.Commit()
		if errors.Is(err, ErrFailpoint) {
			return errCrash
		}
		if err != nil {
			op.comment = truncate(err.Error(), 64)
			a.log.Warn("netdicom: C-STORE failed", "status", op.status.String(), "err", err)
		}
	}
	if op.status == StatusSuccess {
		if err := a.s.o.failpointReply(); err != nil {
			return errCrash
		}
	}
	rspField := op.field | 0x8000
	if err := a.respond(op, rspField, op.status); err != nil {
		return err
	}
	if op.status == StatusSuccess && op.field == cStoreRQ {
		a.stored++
		a.s.added(inst, a.id)
	}
	return nil
}

func (o *Options) failpointReply() error {
	if o.Failpoint == nil {
		return nil
	}
	return o.Failpoint(FailBeforeReply)
}

func (a *scpAssoc) respond(op *incoming, field uint16, st Status) error {
	b := newCommand(field).us(tagMessageIDResponded, op.msgID).us(tagDataSetType, noDataSet).us(tagStatus, uint16(st))
	if field == cEchoRSP {
		b.uid(tagAffectedSOPClass, VerificationUID)
	} else {
		b.uid(tagAffectedSOPClass, op.sopClass).uid(tagAffectedSOPInst, op.sopInst)
	}
	if st != StatusSuccess && op.comment != "" {
		b.text(tagErrorComment, op.comment)
	}
	return a.c.sendMessage(op.ctxID, b.bytes(), nil)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var _ io.Writer = (*Pending)(nil)
