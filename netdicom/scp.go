package netdicom

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/midline-rt/midline/internal/tlsfiles"
)

// Server is the DICOM receiver: C-ECHO and C-STORE SCP, durable spool and series assembly.
type Server struct {
	o       Options
	callers []caller
	spool   *Spool
	log     *slog.Logger

	active atomic.Int64 // associations counted against max_associations
	conns  atomic.Int64 // open connections, including ones not yet associated
	nextID atomic.Uint64

	mu     sync.Mutex // guards asm and queued
	asm    *Assembler
	queued []SeriesEvent
	wake   chan struct{}
}

// NewServer validates the options, opens the spool and rebuilds series state from it.
func NewServer(o Options) (*Server, error) {
	o, callers, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	sp, err := OpenSpool(SpoolOptions{Dir: filepath.Join(o.StateDir, "spool"), NoFsync: o.NoFsync,
		DiskLowWatermark: o.DiskLowWatermark, DiskFree: o.DiskFree, Failpoint: o.Failpoint})
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, callers: callers, spool: sp, log: o.Logger, asm: NewAssembler(o.SeriesTimeout, o.ReleaseGrace), wake: make(chan struct{}, 1)}
	insts, bad, err := sp.Scan()
	if err != nil {
		return nil, fmt.Errorf("netdicom: scan spool: %w", err)
	}
	for _, b := range bad {
		s.log.Warn("netdicom: spool file unreadable, left in place", "path", b)
	}
	done, err := sp.processed()
	if err != nil {
		return nil, fmt.Errorf("netdicom: read processed state: %w", err)
	}
	s.asm.Restore(insts, done, o.Clock.Now())
	return s, nil
}

// Associations is the number of associations being negotiated or served now (health telemetry).
func (s *Server) Associations() int { return int(s.active.Load()) }

// Spool returns the server's spool.
func (s *Server) Spool() *Spool { return s.spool }

// MarkProcessed records that the consumer processed a SeriesReady event, so that a restart
// does not deliver it again.
func (s *Server) MarkProcessed(ev SeriesEvent) error { return s.spool.MarkProcessed(ev) }

// Prune removes processed series and set-aside instances older than maxAge (retention.spool)
// from the spool and forgets them.
func (s *Server) Prune(maxAge time.Duration) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed, err := s.spool.Prune(s.o.Clock.Now(), maxAge)
	for _, uid := range removed {
		if st := s.asm.series[uid]; st != nil && !st.open {
			delete(s.asm.series, uid)
		}
	}
	return removed, err
}

// runRetention prunes the spool every tenth of the retention age (at most hourly).
func (s *Server) runRetention(ctx context.Context) {
	every := min(s.o.Retention/10, time.Hour)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.o.Clock.After(every):
		}
		removed, err := s.Prune(s.o.Retention)
		if err != nil {
			s.log.Error("netdicom: retention", "err", err)
		} else if len(removed) > 0 {
			s.log.Info("netdicom: retention removed processed series", "count", len(removed))
		}
	}
}

// ListenAndServe listens on Options.Listen (and the TLS listener when configured) and serves
// until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lns []net.Listener
	ln, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		return fmt.Errorf("netdicom: listen %s: %w", s.o.Listen, err)
	}
	lns = append(lns, ln)
	if s.o.TLS != nil {
		cfg, err := ServerTLSConfig(*s.o.TLS)
		if err != nil {
			ln.Close()
			return err
		}
		tln, err := tls.Listen("tcp", s.o.TLS.Listen, cfg)
		if err != nil {
			ln.Close()
			return fmt.Errorf("netdicom: listen TLS %s: %w", s.o.TLS.Listen, err)
		}
		lns = append(lns, tln)
	}
	return s.Serve(ctx, lns...)
}

// ServerTLSConfig builds the TLS configuration of the DICOM TLS listener (PS3.15 BCP 195:
// TLS 1.2 or later); with ClientCA set, callers must present a certificate it signed.
func ServerTLSConfig(o TLSOptions) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("netdicom: TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.ClientCA != "" {
		pool, err := tlsfiles.Pool(o.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("netdicom: TLS client CA: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Serve accepts associations on every listener until ctx ends, then closes the listeners,
// aborts open associations and returns after every goroutine it started has finished.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		defer stop()
		wg.Go(func() {
			if err := s.accept(ctx, ln, &wg); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Go(func() { s.runAssembler(ctx) })
	if s.o.Retention > 0 {
		wg.Go(func() { s.runRetention(ctx) })
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (s *Server) accept(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait and retry rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("netdicom: accept", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		// Beyond this many open connections a new one is closed unread: a flood cannot hold
		// a goroutine and a descriptor each for the ARTIM time.
		if s.conns.Add(1) > int64(4*s.o.MaxAssociations+16) {
			s.conns.Add(-1)
			nc.Close()
			continue
		}
		wg.Go(func() {
			defer s.conns.Add(-1)
			s.handle(ctx, nc)
		})
	}
}

// handle runs one association from A-ASSOCIATE-RQ to close.
func (s *Server) handle(ctx context.Context, nc net.Conn) {
	id := s.nextID.Add(1)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	defer nc.Close()
	log := s.log.With("assoc", id, "remote", nc.RemoteAddr().String())
	c := newULConn(nc, s.o.MaxPDU, s.o.IdleTimeout)
	rq, err := s.readRequest(c)
	if err != nil {
		log.Info("netdicom: no association request", "err", err)
		return
	}
	// Only requests count against max_associations: idle connections cannot take the slots.
	busy := s.active.Add(1) > int64(s.o.MaxAssociations)
	defer s.active.Add(-1)
	a, err := s.associate(c, rq, busy, log)
	if err != nil {
		log.Info("netdicom: association not established", "err", err)
		return
	}
	a.id = id
	released, err := a.serve()
	a.cleanup()
	if err != nil {
		log.Info("netdicom: association ended", "err", err, "stored", a.stored)
	} else {
		log.Info("netdicom: association released", "stored", a.stored)
	}
	s.mu.Lock()
	s.asm.AssociationEnded(id, released, s.o.Clock.Now())
	s.mu.Unlock()
	s.poke()
}

func remoteAddr(nc net.Conn) netip.Addr {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

// readRequest reads the A-ASSOCIATE-RQ within the ARTIM time; anything else is aborted.
func (s *Server) readRequest(c *ulConn) (*assocPDU, error) {
	h, body, err := c.readPDU(s.o.ARTIM)
	if err != nil {
		if errors.Is(err, ErrMalformedPDU) {
			c.abort(abortSourceProvider, abortUnrecognized)
		}
		return nil, err
	}
	if h.Type != pduAssociateRQ {
		c.abort(abortSourceProvider, abortUnexpectedPDU)
		return nil, malformed("PDU type 0x%02x before association", h.Type)
	}
	rq, err := decodeAssoc(body, false)
	if err != nil {
		c.abort(abortSourceProvider, abortInvalidParam)
		return nil, err
	}
	return rq, nil
}

// associate answers an association request with A-ASSOCIATE-AC or -RJ.
func (s *Server) associate(c *ulConn, rq *assocPDU, busy bool, log *slog.Logger) (*scpAssoc, error) {
	log = log.With("calling", rq.CallingAE, "called", rq.CalledAE)
	if rj := s.policy(rq, remoteAddr(c.nc), busy); rj != nil {
		c.writeRaw(encodeReject(rj))
		return nil, rj
	}
	a := &scpAssoc{s: s, c: c, log: log, calling: rq.CallingAE, ctxs: map[byte]acceptedCtx{}}
	ac := &assocPDU{ProtocolVersion: 1, CalledAE: rq.CalledAE, CallingAE: rq.CallingAE, AppContext: applicationContextUID,
		MaxPDU: s.o.MaxPDU, ImplClassUID: ImplementationClassUID, ImplVersion: ImplementationVersion}
	if rq.AsyncOps {
		ac.AsyncOps, ac.MaxOpsInvoked, ac.MaxOpsPerformed = true, 1, 1
	}
	for _, pc := range rq.Contexts {
		res := negotiate(pc)
		ac.Contexts = append(ac.Contexts, res)
		if res.Result == pcAccepted {
			a.ctxs[pc.ID] = acceptedCtx{abstract: pc.AbstractSyntax, ts: res.TransferSyntax[0]}
		}
	}
	ac.Roles = answerRoles(rq.Roles)
	c.peerMax = rq.MaxPDU
	if err := c.writeRaw(ac.encode(true)); err != nil {
		return nil, err
	}
	log.Info("netdicom: association accepted", "contexts", len(a.ctxs), "of", len(rq.Contexts), "peer_max_pdu", rq.MaxPDU)
	return a, nil
}

// policyRule is one reason to refuse an association; the conformance statement lists them.
type policyRule struct {
	When   string
	Reject RejectError
	match  func(s *Server, rq *assocPDU, from netip.Addr, busy bool) bool
}

// acceptancePolicy is checked in order; the first rule that matches answers A-ASSOCIATE-RJ.
var acceptancePolicy = []policyRule{
	{"protocol version 1 not offered", RejectError{rjPermanent, rjSourceACSE, rjProtocolVersion},
		func(_ *Server, rq *assocPDU, _ netip.Addr, _ bool) bool { return rq.ProtocolVersion&1 == 0 }},
	{"application context is not the DICOM one", RejectError{rjPermanent, rjSourceUser, rjAppContextNotSupport},
		func(_ *Server, rq *assocPDU, _ netip.Addr, _ bool) bool {
			return rq.AppContext != applicationContextUID
		}},
	{"called AE title is not `dicom.ae_title`", RejectError{rjPermanent, rjSourceUser, rjCalledAENotKnown},
		func(s *Server, rq *assocPDU, _ netip.Addr, _ bool) bool { return rq.CalledAE != s.o.AETitle }},
	{"calling AE title and source address match no `dicom.allowed_callers` entry", RejectError{rjPermanent, rjSourceUser, rjCallingAENotKnown},
		func(s *Server, rq *assocPDU, from netip.Addr, _ bool) bool {
			return !callerAllowed(s.callers, rq.CallingAE, from)
		}},
	{fmt.Sprintf("requester's maximum PDU length below %d bytes (and not 0, unlimited)", minPeerPDU), RejectError{rjPermanent, rjSourceUser, rjNoReason},
		func(_ *Server, rq *assocPDU, _ netip.Addr, _ bool) bool {
			return rq.MaxPDU != 0 && rq.MaxPDU < minPeerPDU
		}},
	{"`dicom.max_associations` reached", RejectError{rjTransient, rjSourcePresentaton, rjLocalLimitExceeded},
		func(_ *Server, _ *assocPDU, _ netip.Addr, busy bool) bool { return busy }},
}

// policy returns the rejection for an association request, or nil to accept it.
func (s *Server) policy(rq *assocPDU, from netip.Addr, busy bool) *RejectError {
	for _, r := range acceptancePolicy {
		if r.match(s, rq, from, busy) {
			rj := r.Reject
			return &rj
		}
	}
	return nil
}

// answerRoles answers SCP/SCU role selection (PS3.7 D.3.3.4): a requester may be the SCU of a
// class Midline knows; Midline never takes the SCU role (it does not do C-GET).
func answerRoles(rq []RoleSelection) []RoleSelection {
	var out []RoleSelection
	for _, r := range rq {
		if _, ok := lookupSOPClass(r.SOPClass); ok {
			out = append(out, RoleSelection{SOPClass: r.SOPClass, SCU: r.SCU, SCP: false})
		}
	}
	return out
}

// negotiate answers one presentation context: the caller's first proposed transfer syntax that
// Midline supports wins.
func negotiate(pc PresentationContext) PresentationContext {
	res := PresentationContext{ID: pc.ID, TransferSyntax: []string{ImplicitVRLittleEndian}}
	if _, ok := lookupSOPClass(pc.AbstractSyntax); !ok {
		res.Result = pcAbstractNotSupported
		return res
	}
	for _, ts := range pc.TransferSyntax {
		if _, ok := lookupTransferSyntax(ts); ok {
			if pc.AbstractSyntax == VerificationUID && ts != ImplicitVRLittleEndian && ts != ExplicitVRLittleEndian && ts != ExplicitVRBigEndian {
				continue
			}
			res.TransferSyntax[0] = ts
			return res
		}
	}
	res.Result = pcTransferNotSupported
	return res
}

func (s *Server) added(inst Instance, assoc uint64) {
	s.mu.Lock()
	s.queued = append(s.queued, s.asm.Add(inst, assoc, s.o.Clock.Now())...)
	s.mu.Unlock()
	s.poke()
	if s.o.OnInstance != nil {
		s.o.OnInstance(inst)
	}
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runAssembler delivers series events from one goroutine, in order.
func (s *Server) runAssembler(ctx context.Context) {
	for {
		s.mu.Lock()
		now := s.o.Clock.Now()
		evs := append(s.queued, s.asm.Due(now)...)
		s.queued = nil
		next, ok := s.asm.Next()
		s.mu.Unlock()
		for _, ev := range evs {
			s.deliver(ev)
		}
		var timer <-chan time.Time
		if ok {
			timer = s.o.Clock.After(max(next.Sub(now), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer:
		}
	}
}

func (s *Server) deliver(ev SeriesEvent) {
	s.log.Info("netdicom: series event", "kind", ev.Kind, "series", ev.SeriesUID, "generation", ev.Generation,
		"supersedes", ev.Supersedes, "reason", ev.Reason, "instances", len(ev.Paths))
	if s.o.OnSeries != nil {
		s.o.OnSeries(ev)
	}
}
