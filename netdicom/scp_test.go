package netdicom

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func dialTest(t *testing.T, ts *testServer, o ClientOptions, pcs ...PresentationContext) (*Association, error) {
	t.Helper()
	if o.CalledAE == "" {
		o.CalledAE = "MIDLINE"
	}
	o.Timeout = 10 * time.Second
	if len(pcs) == 0 {
		pcs = []PresentationContext{{AbstractSyntax: VerificationUID, TransferSyntax: []string{ImplicitVRLittleEndian}}}
	}
	return Dial(context.Background(), ts.addr, o, pcs)
}

func TestAssociationRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		c    ClientOptions
		want RejectError
	}{
		{"called AE", Options{}, ClientOptions{CalledAE: "OTHER"}, RejectError{rjPermanent, rjSourceUser, rjCalledAENotKnown}},
		{"calling AE", Options{AllowedCallers: []Caller{{AETitle: "SCANNER"}}}, ClientOptions{CallingAE: "INTRUDER"}, RejectError{rjPermanent, rjSourceUser, rjCallingAENotKnown}},
		{"tiny maximum PDU", Options{}, ClientOptions{MaxPDU: 100}, RejectError{rjPermanent, rjSourceUser, rjNoReason}},
		{"source address", Options{AllowedCallers: []Caller{{AETitle: "SCANNER", CIDR: "10.0.0.0/8"}}}, ClientOptions{CallingAE: "SCANNER"}, RejectError{rjPermanent, rjSourceUser, rjCallingAENotKnown}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.o)
			_, err := dialTest(t, ts, tc.c)
			var rj *RejectError
			if !errors.As(err, &rj) || *rj != tc.want {
				t.Fatalf("Dial: %v, want %v", err, &tc.want)
			}
		})
	}
	t.Run("allowed caller", func(t *testing.T) {
		ts := startServer(t, Options{AllowedCallers: []Caller{{AETitle: "SCANNER", CIDR: "127.0.0.0/8"}}})
		a, err := dialTest(t, ts, ClientOptions{CallingAE: "SCANNER"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Echo(); err != nil {
			t.Fatal(err)
		}
		a.Release()
	})
}

func TestBusyIsTransientRejection(t *testing.T) {
	ts := startServer(t, Options{MaxAssociations: 1})
	first, err := dialTest(t, ts, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	_, err = dialTest(t, ts, ClientOptions{})
	var rj *RejectError
	if !errors.As(err, &rj) || *rj != (RejectError{rjTransient, rjSourcePresentaton, rjLocalLimitExceeded}) {
		t.Fatalf("second association: %v, want transient local-limit rejection", err)
	}
	out, _ := dcmtk(t, 30*time.Second, "echoscu", "-aec", "MIDLINE", "127.0.0.1", ts.port)
	if !strings.Contains(out, "Rejected") && !strings.Contains(out, "rejected") {
		t.Errorf("echoscu while busy:\n%s", out)
	}
}

func TestPresentationContextNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name string
		pc   PresentationContext
		want PresentationContext
	}{
		{"first supported wins", PresentationContext{ID: 1, AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{"1.2.840.10008.1.2.4.50", ExplicitVRBigEndian, ImplicitVRLittleEndian}},
			PresentationContext{ID: 1, TransferSyntax: []string{ExplicitVRBigEndian}}},
		{"JPEG only", PresentationContext{ID: 3, AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{"1.2.840.10008.1.2.4.50"}},
			PresentationContext{ID: 3, TransferSyntax: []string{ImplicitVRLittleEndian}, Result: pcTransferNotSupported}},
		{"CT refused", PresentationContext{ID: 5, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntax: []string{ImplicitVRLittleEndian}},
			PresentationContext{ID: 5, TransferSyntax: []string{ImplicitVRLittleEndian}, Result: pcAbstractNotSupported}},
		{"secondary capture set aside", PresentationContext{ID: 7, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.7", TransferSyntax: []string{RLELossless}},
			PresentationContext{ID: 7, TransferSyntax: []string{RLELossless}}},
		{"verification not deflated", PresentationContext{ID: 9, AbstractSyntax: VerificationUID, TransferSyntax: []string{DeflatedExplicitVRLE, ExplicitVRLittleEndian}},
			PresentationContext{ID: 9, TransferSyntax: []string{ExplicitVRLittleEndian}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := negotiate(tc.pc)
			if got.ID != tc.want.ID || got.Result != tc.want.Result || got.TransferSyntax[0] != tc.want.TransferSyntax[0] {
				t.Errorf("negotiate = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestStoreStatuses checks each failure status the SCP sends, through our own SCU, and that
// nothing reaches the spool for a refused instance.
func TestStoreStatuses(t *testing.T) {
	series := uidFor(t.Name())
	p := phantom{series: series, n: 1, rows: 16, cols: 16}
	file := p.write(t, t.TempDir())[0]
	data := dataSetBytes(t, file)
	mr := PresentationContext{AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{ExplicitVRLittleEndian}}
	for _, tc := range []struct {
		name    string
		free    uint64
		sopInst string
		data    []byte
		want    Status
		inSpool bool
	}{
		{"success", 1 << 40, p.instanceUID(0), data, StatusSuccess, true},
		{"disk below watermark", 1 << 20, p.instanceUID(0), data, StatusOutOfResources, false},
		{"instance mismatch", 1 << 40, series + ".99", data, StatusDataSetMismatch, false},
		{"garbage", 1 << 40, p.instanceUID(0), []byte("\x08\x00\x16\x00UI\xff\xffnot a data set"), StatusCannotUnderstand, false},
		{"invalid UID", 1 << 40, "1.2.abc", data, StatusCannotUnderstand, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Options{DiskLowWatermark: 64 << 20, DiskFree: func(string) (uint64, error) { return tc.free, nil }})
			a, err := dialTest(t, ts, ClientOptions{}, mr)
			if err != nil {
				t.Fatal(err)
			}
			st, err := a.Store(MRImageStorageUID, tc.sopInst, ExplicitVRLittleEndian, bytes.NewReader(tc.data))
			if st != tc.want {
				t.Errorf("status %v (%v), want %v", st, err, tc.want)
			}
			var se *StatusError
			if tc.want != StatusSuccess && !errors.As(err, &se) {
				t.Errorf("error %v is not a StatusError", err)
			}
			if err := a.Release(); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(ts.dir, "spool", "*", "*", "*"))
			if got := len(files) > 0; got != tc.inSpool {
				t.Errorf("spool holds %v, want stored=%v", files, tc.inSpool)
			}
			tmp, _ := os.ReadDir(filepath.Join(ts.dir, "spool", spoolTmp))
			if len(tmp) != 0 {
				t.Errorf("temp files left: %v", tmp)
			}
		})
	}
}

// TestResendIsIdempotent sends the same instance twice: one file, one series release.
func TestResendIsIdempotent(t *testing.T) {
	p := phantom{series: uidFor(t.Name()), n: 2, rows: 16, cols: 16}
	files := p.write(t, t.TempDir())
	ts := startServer(t, Options{SeriesTimeout: time.Hour})
	for range 2 {
		res, err := SendFiles(context.Background(), ts.addr, ClientOptions{CalledAE: "MIDLINE"}, files)
		if err != nil || res[0].Err != nil || res[1].Err != nil {
			t.Fatalf("send: %v %+v", err, res)
		}
	}
	got, _ := filepath.Glob(filepath.Join(ts.dir, "spool", spoolSeries, p.series, "*.dcm"))
	if len(got) != 2 {
		t.Errorf("spool holds %d files, want 2", len(got))
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.Server.mu.Lock()
	defer ts.Server.mu.Unlock()
	if s := ts.asm.series[p.series]; s == nil || len(s.insts) != 2 {
		t.Errorf("assembler state: %+v", s)
	}
}

// TestIdleConnectionsDoNotTakeAssociationSlots opens connections that never send a request:
// they do not count against max_associations, and past the connection cap new ones are closed
// unread while the server keeps serving once they go.
func TestIdleConnectionsDoNotTakeAssociationSlots(t *testing.T) {
	ts := startServer(t, Options{MaxAssociations: 2, ARTIM: 300 * time.Millisecond})
	var idle []net.Conn
	for range 10 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	if err := Echo(context.Background(), ts.addr, ClientOptions{CalledAE: "MIDLINE", Timeout: 5 * time.Second}); err != nil {
		t.Fatalf("echo beside 10 idle connections: %v", err)
	}
	for range 30 { // past the cap of 4*2+16 open connections
		if c, err := net.Dial("tcp", ts.addr); err == nil {
			idle = append(idle, c)
		}
	}
	var err error
	for range 50 { // the ARTIM timer frees the idle ones
		if err = Echo(context.Background(), ts.addr, ClientOptions{CalledAE: "MIDLINE", Timeout: 5 * time.Second}); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no echo after the flood: %v", err)
}

func TestRoleSelectionAnswers(t *testing.T) {
	got := answerRoles([]RoleSelection{{SOPClass: MRImageStorageUID, SCU: true}, {SOPClass: MRImageStorageUID, SCU: true, SCP: true},
		{SOPClass: "1.2.840.10008.5.1.4.1.1.2", SCU: true}})
	want := []RoleSelection{{SOPClass: MRImageStorageUID, SCU: true}, {SOPClass: MRImageStorageUID, SCU: true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("answerRoles = %+v, want %+v", got, want)
	}
}
