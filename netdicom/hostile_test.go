package netdicom

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// TestHostileInput sends malformed and stalled byte streams over real sockets while a
// well-behaved storescu sends a series: every hostile connection gets A-ABORT or is closed, and
// the series arrives whole.
func TestHostileInput(t *testing.T) {
	ts := startServer(t, Options{ARTIM: 300 * time.Millisecond, IdleTimeout: 2 * time.Second, MaxAssociations: 64, SeriesTimeout: time.Hour})
	rq := seedPDUs()[0]
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	huge := appendPDUHeader(nil, pduPData, 0)
	binary.BigEndian.PutUint32(huge[2:], 0xFFFFFFFF)
	hugeRQ := appendPDUHeader(nil, pduAssociateRQ, 0)
	binary.BigEndian.PutUint32(hugeRQ[2:], 0xFFFFFFFF)
	pdataFirst := seedPDUs()[2]
	cases := []struct {
		name  string
		bytes []byte
		after []byte // sent after the association is accepted
	}{
		{"truncated RQ", rq[:len(rq)/2], nil},
		{"truncated header", rq[:3], nil},
		{"RQ length 0xFFFFFFFF", hugeRQ, nil},
		{"P-DATA length 0xFFFFFFFF", rq, huge},
		{"unknown PDU type", []byte{0x09, 0, 0, 0, 0, 4, 1, 2, 3, 4}, nil},
		{"P-DATA before association", pdataFirst, nil},
		{"random bytes", random, nil},
		{"random after accept", rq, random},
		{"second RQ inside association", rq, rq},
		{"release PDU of length 5", rq, []byte{0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}},
		{"slow sender never finishes", rq[:20], nil},
		{"stall inside association", rq, pdataFirst[:10]},
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		p := phantom{series: uidFor(t.Name()), n: 40, rows: 32, cols: 32}
		files := p.write(t, t.TempDir())
		args := append([]string{"-aet", "SCANNER", "-aec", "MIDLINE", "127.0.0.1", ts.port}, files...)
		if out, err := dcmtk(t, 2*time.Minute, "storescu", args...); err != nil {
			t.Errorf("storescu beside hostile peers: %v\n%s", err, out)
			return
		}
		for i, f := range files {
			if string(dataSetBytes(t, ts.storedPath(p.series, p.instanceUID(i)))) != string(dataSetBytes(t, f)) {
				t.Errorf("instance %d differs", i)
			}
		}
	})
	for round := range 3 {
		for _, tc := range cases {
			wg.Go(func() {
				got := hostile(t, ts.addr, tc.bytes, tc.after)
				if got != "abort" && got != "closed" {
					t.Errorf("round %d %s: server answered %s, want A-ABORT or close", round, tc.name, got)
				}
			})
		}
	}
	wg.Wait()
	if err := Echo(t.Context(), ts.addr, ClientOptions{CalledAE: "MIDLINE"}); err != nil {
		t.Fatalf("server not serving after hostile input: %v", err)
	}
}

// hostile connects, sends b (and after, once an A-ASSOCIATE-AC came back), and reports how the
// server ended the connection.
func hostile(t *testing.T, addr string, b, after []byte) string {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return "dial error"
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	nc.Write(b)
	for {
		var h [6]byte
		if _, err := io.ReadFull(nc, h[:]); err != nil {
			return "closed"
		}
		body := make([]byte, min(binary.BigEndian.Uint32(h[2:]), 1<<20))
		if _, err := io.ReadFull(nc, body); err != nil {
			return "closed"
		}
		switch h[0] {
		case pduAbort:
			return "abort"
		case pduAssociateAC:
			if after == nil {
				return "accepted"
			}
			nc.Write(after)
			after = nil
		default:
			return "PDU type " + string('0'+rune(h[0]))
		}
	}
}
