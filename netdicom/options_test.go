package netdicom

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // part of the error; "" for valid
	}{
		{"valid", Options{AETitle: "MIDLINE", StateDir: "/x"}, ""},
		{"no AE title", Options{StateDir: "/x"}, "dicom.ae_title"},
		{"AE title too long", Options{AETitle: "ABCDEFGHIJKLMNOPQ", StateDir: "/x"}, "dicom.ae_title"},
		{"no state dir", Options{AETitle: "MIDLINE"}, "state_dir"},
		{"max_pdu too small", Options{AETitle: "MIDLINE", StateDir: "/x", MaxPDU: 100}, "dicom.max_pdu"},
		{"max_pdu too large", Options{AETitle: "MIDLINE", StateDir: "/x", MaxPDU: 1 << 30}, "dicom.max_pdu"},
		{"bad CIDR", Options{AETitle: "MIDLINE", StateDir: "/x", AllowedCallers: []Caller{{CIDR: "10.0.0.0/33"}}}, "allowed_callers[0].cidr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.o.withDefaults()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("withDefaults: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestCallerAllowed(t *testing.T) {
	callers, err := parseCallers([]Caller{{AETitle: "MR1", CIDR: "10.1.0.0/16"}, {AETitle: "MR2"}, {CIDR: "fd00::/8"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ae, addr string
		want     bool
	}{
		{"MR1", "10.1.2.3", true},
		{"MR1", "10.2.0.1", false},
		{"MR1", "::ffff:10.1.2.3", true},
		{"MR2", "192.168.1.1", true},
		{"ANY", "fd00::1", true},
		{"ANY", "10.1.2.3", false},
	} {
		if got := callerAllowed(callers, tc.ae, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("callerAllowed(%s, %s) = %v, want %v", tc.ae, tc.addr, got, tc.want)
		}
	}
	if !callerAllowed(nil, "ANY", netip.MustParseAddr("1.2.3.4")) {
		t.Error("an empty allowed_callers refused a caller")
	}
}
