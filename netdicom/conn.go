package netdicom

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// ulConn is the Upper Layer framing shared by both roles: it reads whole PDUs into a reused
// buffer and writes DIMSE messages as P-DATA-TF PDUs no longer than the peer accepts.
type ulConn struct {
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	rbuf     []byte
	wbuf     []byte
	pdvs     []pdv
	maxRecv  uint32 // what we advertised: bound on incoming P-DATA-TF
	peerMax  uint32 // what the peer advertised: bound on outgoing P-DATA-TF (0: ours)
	idle     time.Duration
	deadline func() time.Time
}

func newULConn(nc net.Conn, maxRecv uint32, idle time.Duration) *ulConn {
	return &ulConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10), maxRecv: maxRecv, idle: idle}
}

// readPDU reads the next PDU within the idle timeout; the body is valid until the next call.
func (c *ulConn) readPDU(timeout time.Duration) (pduHeader, []byte, error) {
	if timeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(timeout))
	}
	h, body, err := readPDU(c.r, c.maxRecv, c.rbuf)
	if cap(body) > cap(c.rbuf) {
		c.rbuf = body[:0:cap(body)]
	}
	return h, body, err
}

func (c *ulConn) writeRaw(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("netdicom: write PDU: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("netdicom: write PDU: %w", err)
	}
	return nil
}

func (c *ulConn) writeTimeout() time.Duration {
	if c.idle > 0 {
		return c.idle
	}
	return time.Minute
}

// sendPDVLimit is the data carried by one PDV in one P-DATA-TF PDU.
func (c *ulConn) sendPDVLimit() int {
	// Smaller PDUs than the peer allows are always legal; capping them bounds our buffers.
	max := c.peerMax
	if max == 0 || max > DefaultMaxPDU {
		max = DefaultMaxPDU
	}
	return int(max) - 6
}

// sendMessage writes a command and, when data is not nil, its data set, fragmented to the
// peer's maximum PDU length.
func (c *ulConn) sendMessage(ctxID byte, cmd []byte, data io.Reader) error {
	limit := c.sendPDVLimit()
	if err := c.sendFragments(ctxID, 0x01, cmd, limit); err != nil {
		return err
	}
	if data != nil {
		if err := c.sendStream(ctxID, data, limit); err != nil {
			return err
		}
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("netdicom: write P-DATA-TF: %w", err)
	}
	return nil
}

func (c *ulConn) sendFragments(ctxID, ctrl byte, b []byte, limit int) error {
	for {
		n := min(len(b), limit)
		last := n == len(b)
		hdr := ctrl
		if last {
			hdr |= 0x02
		}
		if err := c.writePDV(ctxID, hdr, b[:n]); err != nil {
			return err
		}
		if last {
			return nil
		}
		b = b[n:]
	}
}

// sendStream sends a data set read from r; the last PDV is known only when r is exhausted, so
// one chunk is held back.
func (c *ulConn) sendStream(ctxID byte, r io.Reader, limit int) error {
	if cap(c.wbuf) < 2*limit {
		c.wbuf = make([]byte, 2*limit)
	}
	cur, next := c.wbuf[:limit], c.wbuf[limit:2*limit]
	n, err := io.ReadFull(r, cur)
	for {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return c.writePDV(ctxID, 0x02, cur[:n])
		}
		if err != nil {
			return fmt.Errorf("netdicom: read data set to send: %w", err)
		}
		m, err2 := io.ReadFull(r, next)
		if err2 == io.EOF {
			return c.writePDV(ctxID, 0x02, cur[:n])
		}
		if werr := c.writePDV(ctxID, 0x00, cur[:n]); werr != nil {
			return werr
		}
		cur, next, n, err = next, cur, m, err2
	}
}

func (c *ulConn) writePDV(ctxID, hdr byte, data []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout()))
	var h [12]byte
	h[0] = pduPData
	binary.BigEndian.PutUint32(h[2:], uint32(len(data)+6))
	binary.BigEndian.PutUint32(h[6:], uint32(len(data)+2))
	h[10], h[11] = ctxID, hdr
	if _, err := c.w.Write(h[:]); err != nil {
		return fmt.Errorf("netdicom: write P-DATA-TF: %w", err)
	}
	if _, err := c.w.Write(data); err != nil {
		return fmt.Errorf("netdicom: write P-DATA-TF: %w", err)
	}
	return nil
}

func (c *ulConn) abort(source, reason byte) {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.w.Write(encodeAbort(source, reason))
	c.w.Flush()
}
