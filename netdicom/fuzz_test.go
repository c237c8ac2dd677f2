package netdicom

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// seedPDUs are valid PDUs of every type, for the fuzzers' corpus.
func seedPDUs() [][]byte {
	rq := &assocPDU{ProtocolVersion: 1, CalledAE: "MIDLINE", CallingAE: "SCANNER", AppContext: applicationContextUID,
		MaxPDU: 16384, ImplClassUID: ImplementationClassUID, ImplVersion: ImplementationVersion, AsyncOps: true, MaxOpsInvoked: 1, MaxOpsPerformed: 1,
		Contexts: []PresentationContext{{ID: 1, AbstractSyntax: MRImageStorageUID, TransferSyntax: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}}},
		Roles:    []RoleSelection{{SOPClass: MRImageStorageUID, SCU: true}}}
	ac := &assocPDU{ProtocolVersion: 1, CalledAE: "MIDLINE", CallingAE: "SCANNER", AppContext: applicationContextUID, MaxPDU: 4096,
		ImplClassUID: ImplementationClassUID, Contexts: []PresentationContext{{ID: 1, TransferSyntax: []string{ExplicitVRLittleEndian}}}}
	cmd := newCommand(cStoreRQ).us(tagMessageID, 7).uid(tagAffectedSOPClass, MRImageStorageUID).uid(tagAffectedSOPInst, "1.2.3").us(tagDataSetType, 0).bytes()
	pdata := appendPDUHeader(nil, pduPData, len(cmd)+6)
	pdata = binary.BigEndian.AppendUint32(pdata, uint32(len(cmd)+2))
	pdata = append(append(pdata, 1, 3), cmd...)
	return [][]byte{rq.encode(false), ac.encode(true), pdata, encodeReject(&RejectError{1, 1, 7}),
		encodeAbort(2, 6), encodeRelease(pduReleaseRQ), encodeRelease(pduReleaseRP)}
}

// FuzzPDU feeds arbitrary bytes to the PDU reader and every body decoder. Nothing may panic or
// allocate beyond the limits; a decoded association PDU re-encodes to one that decodes equal.
func FuzzPDU(f *testing.F) {
	for _, s := range seedPDUs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			h, body, err := readPDU(r, 1<<16, nil)
			if err != nil {
				return
			}
			switch h.Type {
			case pduAssociateRQ, pduAssociateAC:
				ac := h.Type == pduAssociateAC
				a, err := decodeAssoc(body, ac)
				if err != nil {
					continue
				}
				b, err := decodeAssoc(a.encode(ac)[6:], ac)
				if err != nil {
					t.Fatalf("re-encoded PDU does not decode: %v", err)
				}
				a.presentationSeen, b.presentationSeen, a.otherUserItems, b.otherUserItems = nil, nil, 0, 0
				if !reflect.DeepEqual(normalizeAssoc(a), normalizeAssoc(b)) {
					t.Fatalf("round trip changed the PDU:\n%+v\n%+v", a, b)
				}
			case pduPData:
				pdvs, err := decodePData(body, nil)
				if err != nil {
					continue
				}
				for _, p := range pdvs {
					if p.Command {
						decodeCommand(p.Data)
					}
				}
			}
		}
	})
}

// normalizeAssoc drops what encoding cannot carry (AE titles are space padded to 16 bytes, UIDs
// lose trailing padding, values beyond a field's width are cut).
func normalizeAssoc(a *assocPDU) *assocPDU {
	c := *a
	c.sawUserInfo = true
	return &c
}

// FuzzReadHead feeds arbitrary data sets, in every transfer syntax, to the receiver's data set
// reader, with the stored test files as seeds.
func FuzzReadHead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.dcm"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		m, err := ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			f.Fatal(err)
		}
		for i, ts := range TransferSyntaxes {
			if ts.UID == m.TransferSyntax {
				f.Add(b[m.DataOffset:], uint8(i))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, ts uint8) {
		uid := TransferSyntaxes[int(ts)%len(TransferSyntaxes)].UID
		ReadHead(io.LimitReader(bytes.NewReader(data), 1<<20), uid)
		raw, err := ReadRawValues(io.LimitReader(bytes.NewReader(data), 1<<20), uid,
			func(tag uint32) bool { return tag>>16 == 0x0010 || tag == 0x00080005 }, 0x0020FFFF)
		for tag, v := range raw {
			if len(v) > maxRawValue || !(tag>>16 == 0x0010 || tag == 0x00080005) {
				t.Fatalf("kept (%08x) of %d bytes (err %v)", tag, len(v), err)
			}
		}
		ReadFileMeta(bytes.NewReader(data))
	})
}
