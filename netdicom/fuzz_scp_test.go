package netdicom

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzSCPAssociation drives a whole provider association with arbitrary bytes after a valid
// A-ASSOCIATE-RQ (seeded with a C-STORE of a real data set in every transfer syntax): the
// server must never panic, must end the association, and must leave no temp file behind.
func FuzzSCPAssociation(f *testing.F) {
	pdus := seedPDUs()
	f.Add(pdus[2])
	f.Add(append(append([]byte{}, pdus[2]...), pdus[5]...))
	f.Add(storeRequestPDUs(f, "testdata/mr_small_explicit.dcm"))
	f.Add(storeRequestPDUs(f, "testdata/mr_small_rle.dcm"))
	dir := f.TempDir()
	s, err := NewServer(Options{AETitle: "MIDLINE", StateDir: dir, NoFsync: true, IdleTimeout: time.Second, ARTIM: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	rq := fuzzRQ()
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { s.handle(context.Background(), server); close(done) }()
		go io.Copy(io.Discard, client)
		client.SetDeadline(time.Now().Add(2 * time.Second))
		client.Write(rq)
		client.Write(data)
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("association did not end")
		}
	})
}

// fuzzRQ proposes every transfer syntax for MR Image Storage on context 1 and Verification on 3.
func fuzzRQ() []byte {
	var ts []string
	for _, t := range TransferSyntaxes {
		ts = append(ts, t.UID)
	}
	rq := &assocPDU{ProtocolVersion: 1, CalledAE: "MIDLINE", CallingAE: "FUZZ", AppContext: applicationContextUID, MaxPDU: 16384,
		ImplClassUID: ImplementationClassUID, Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{ExplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: VerificationUID, TransferSyntax: ts[:1]},
			{ID: 5, AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{RLELossless}},
		}}
	return rq.encode(false)
}

// storeRequestPDUs encodes a C-STORE-RQ of a test file as P-DATA-TF PDUs on the context that
// carries its transfer syntax, as a sender would.
func storeRequestPDUs(f testing.TB, path string) []byte {
	m := fileMeta(f, path)
	ctx := byte(1)
	if m.TransferSyntax == RLELossless {
		ctx = 5
	}
	data := dataSetBytes(f, path)
	cmd := newCommand(cStoreRQ).us(tagMessageID, 1).uid(tagAffectedSOPClass, m.SOPClassUID).uid(tagAffectedSOPInst, m.SOPInstanceUID).us(tagDataSetType, 0).bytes()
	var out []byte
	out = appendPDV(out, ctx, 0x03, cmd)
	for len(data) > 0 {
		n := min(len(data), 100)
		hdr := byte(0)
		if n == len(data) {
			hdr = 2
		}
		out = appendPDV(out, ctx, hdr, data[:n])
		data = data[n:]
	}
	return append(out, encodeRelease(pduReleaseRQ)...)
}

func appendPDV(b []byte, ctx, hdr byte, data []byte) []byte {
	b = appendPDUHeader(b, pduPData, len(data)+6)
	b = append(b, byte((len(data)+2)>>24), byte((len(data)+2)>>16), byte((len(data)+2)>>8), byte(len(data)+2), ctx, hdr)
	return append(b, data...)
}

// TestSCPPlaysStoreSeeds checks that the fuzzer's C-STORE seeds are valid: played over a pipe
// they store their instance and get A-RELEASE-RP.
func TestSCPPlaysStoreSeeds(t *testing.T) {
	for _, path := range []string{"testdata/mr_small_explicit.dcm", "testdata/mr_small_rle.dcm"} {
		var stored []Instance
		s, err := NewServer(Options{AETitle: "MIDLINE", StateDir: t.TempDir(), Logger: quietLogger(),
			OnInstance: func(in Instance) { stored = append(stored, in) }})
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { s.handle(context.Background(), server); close(done) }()
		var got []byte
		read := make(chan struct{})
		go func() { got, _ = io.ReadAll(client); close(read) }()
		client.Write(fuzzRQ())
		client.Write(storeRequestPDUs(t, path))
		<-done
		client.Close()
		<-read
		if len(stored) != 1 || len(got) < 10 || got[len(got)-10] != pduReleaseRP {
			t.Errorf("%s: stored %d, answer ends % x", path, len(stored), got[max(0, len(got)-10):])
		}
	}
}
