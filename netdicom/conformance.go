package netdicom

import (
	"fmt"
	"io"
	"strings"
)

// WriteConformance writes Midline's DICOM Conformance Statement (PS3.2 layout, Markdown) from
// the tables the code itself uses, so that the document cannot drift from the behaviour.
func WriteConformance(w io.Writer, firmwareVersion string) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# DICOM Conformance Statement: Midline %s", firmwareVersion)
	p("")
	p("Generated from `netdicom/tables.go` by `midline conformance`; do not edit by hand.")
	p("")
	p("## 1 Overview")
	p("")
	p("Midline is an edge box beside an MR scanner. It receives MR images as a Storage SCP, segments")
	p("them, and sends RT Structure Sets to a planning system as a Storage SCU. Every result it sends")
	p("is an unreviewed draft.")
	p("")
	p("| SOP class | UID | user of service (SCU) | provider of service (SCP) |")
	p("|---|---|---|---|")
	p("| Verification | %s | yes | yes |", VerificationUID)
	for _, c := range SOPClasses {
		if c.Disposition == VerifyOnly {
			continue
		}
		p("| %s | %s | %s | yes |", c.Name, c.UID, scuRole(c.UID))
	}
	p("| RT Structure Set Storage | %s | yes | no |", RTStructureSetUID)
	p("")
	p("## 2 Networking")
	p("")
	p("### 2.1 Implementation model")
	p("")
	p("One application entity (AE title from `dicom.ae_title`) listens on `dicom.listen` and, with")
	p("`dicom.tls`, on a TLS port. Received instances are written to a spool on local disk before")
	p("they are acknowledged, and grouped into series by Series Instance UID.")
	p("")
	p("### 2.2 AE specifications")
	p("")
	p("| item | value |")
	p("|---|---|")
	p("| Implementation Class UID | %s |", ImplementationClassUID)
	p("| Implementation Version Name | %s |", ImplementationVersion)
	p("| Application Context Name | %s |", applicationContextUID)
	p("| Maximum PDU received | `dicom.max_pdu` (default %d, range %d to %d) |", DefaultMaxPDU, MinPDU, MaxPDULimit)
	p("| Maximum associations | `dicom.max_associations` (default %d); more are rejected transiently |", DefaultMaxAssociations)
	p("| Asynchronous operations window | not supported; answered as 1/1 |")
	p("| SCP/SCU role selection | answered for known classes: the requester may be SCU; Midline never takes the SCU role |")
	p("| Extended negotiation, user identity | ignored |")
	p("")
	p("#### Association acceptance policy")
	p("")
	p("| condition | A-ASSOCIATE-RJ result, source, reason |")
	p("|---|---|")
	for _, r := range acceptancePolicy {
		p("| %s | %d, %d, %d (%s) |", r.When, r.Reject.Result, r.Reject.Source, r.Reject.Reason, rejectReason(r.Reject.Source, r.Reject.Reason))
	}
	p("")
	p("#### Presentation contexts accepted (SCP)")
	p("")
	p("Every SOP class in the table of section 1 with any of these transfer syntaxes; when a context")
	p("offers several, the requester's first one that is listed here is accepted. Other SOP classes")
	p("are refused per context (result 3), contexts offering none of these syntaxes with result 4.")
	p("Verification accepts only the three uncompressed syntaxes.")
	p("")
	p("| transfer syntax | UID |")
	p("|---|---|")
	for _, ts := range TransferSyntaxes {
		p("| %s | %s |", ts.Name, ts.UID)
	}
	p("")
	p("What the receiver does with each class:")
	p("")
	p("| SOP class | disposition |")
	p("|---|---|")
	for _, c := range SOPClasses {
		p("| %s | %s |", c.Name, c.Disposition)
	}
	p("")
	p("#### C-STORE SCP status codes")
	p("")
	p("| status | meaning | when |")
	p("|---|---|---|")
	for _, s := range StoreStatuses {
		p("| %s | %s | %s |", fmtStatus(s.Status), s.Meaning, s.When)
	}
	p("")
	p("Instances are stored with the data set bytes as received. A re-sent SOP Instance UID with")
	p("identical bytes is acknowledged and kept once; different bytes replace the stored copy.")
	p("")
	p("#### Storage SCU")
	p("")
	p("Proposes one presentation context per SOP class and transfer syntax of the files it sends,")
	p("with the file's own transfer syntax, and sends the data set as it is in the file. Beside it,")
	p("one context per SOP class offers %s; when only that is accepted,", strings.Join(tsNames(uncompressedFallback), " and "))
	p("the data set is transcoded (RLE Lossless frames decoded, colour by pixel); a file in any other")
	p("compressed syntax the peer refuses fails with a clear error, the rest of the association goes on. Warning")
	p("statuses (0xB000-0xBFFF) count as success; any other non-zero status is a failure reported")
	p("with its code and error comment.")
	p("")
	p("### 2.3 Network interfaces")
	p("")
	p("TCP/IP over IPv4 or IPv6 (PS3.8 Upper Layer); no-delay set on every connection. DICOM TLS on a")
	p("separate port (section 4).")
	p("")
	p("### 2.4 Configuration")
	p("")
	p("| key | meaning | default |")
	p("|---|---|---|")
	p("| `dicom.ae_title` | called AE title required of callers | (required) |")
	p("| `dicom.listen` | TCP listen address | `:11112` (`midline serve`) |")
	p("| `dicom.tls.listen`, `cert`, `key`, `client_ca` | DICOM TLS listener; client certificates required when `client_ca` is set | off |")
	p("| `dicom.allowed_callers[]` (`ae_title`, `cidr`) | callers accepted; empty fields match any | anyone |")
	p("| `dicom.max_associations` | concurrent associations | %d |", DefaultMaxAssociations)
	p("| `dicom.max_pdu` | maximum PDU length received | %d |", DefaultMaxPDU)
	p("| `dicom.series_timeout` | per-series quiet period | %s |", DefaultSeriesTimeout)
	p("| `dicom.disk_low_watermark` | free bytes below which C-STORE is refused with 0xA700 | off (`midline serve`: 1 GiB) |")
	p("| `retention.spool` | age after which processed series leave the spool | kept |")
	p("| `destinations[]` (`name`, `ae_title`, `host`, `port`, `tls`) | Storage SCU peers | none |")
	p("")
	p("Timers: ARTIM %s (wait for A-ASSOCIATE-RQ), idle timeout %s (between PDUs of an", DefaultARTIM, DefaultIdleTimeout)
	p("association); an association silent longer is aborted.")
	p("")
	p("## 3 Media interchange")
	p("")
	p("None. The spool holds Part 10 files for internal use only; it is not a DICOM File-set.")
	p("")
	p("## 4 Security")
	p("")
	p("DICOM TLS (PS3.15 BCP 195, TLS 1.2 or later) on a second listener when `dicom.tls` is set;")
	p("with `dicom.tls.client_ca`, callers must present a certificate signed by that CA. No user")
	p("identity negotiation.")
	p("")
	p("## 5 Support of character sets")
	p("")
	p("Stored data sets are not decoded or re-encoded; any Specific Character Set is kept as received.")
	_, err := io.WriteString(w, b.String())
	return err
}

func tsNames(uids []string) []string {
	var out []string
	for _, u := range uids {
		t, _ := lookupTransferSyntax(u)
		out = append(out, t.Name)
	}
	return out
}

func scuRole(uid string) string {
	if c, ok := lookupSOPClass(uid); ok && c.Disposition == Process {
		return "yes"
	}
	return "no"
}
