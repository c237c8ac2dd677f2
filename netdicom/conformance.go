package netdicom

import (
	"fmt"
	"io"
	"strings"
)

// WriteConformance writes Midline's DICOM Conformance Statement (PS3.2 layout, Markdown) from
// the tables the code itself uses, so that the document cannot drift from the behaviour.
func WriteConformance(w io.Writer, firmwareVersion string) error {
	render := func(parts ...func(func(string, ...any))) string {
		var b strings.Builder
		p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
		for _, part := range parts {
			part(p)
		}
		return b.String()
	}
	overview := render(confOverview)
	rest := render(confIntroduction(firmwareVersion), confNetworking, confInitiation, confAcceptance,
		confInterfaces, confOtherSections, confAnnexes)
	var out strings.Builder
	fmt.Fprintf(&out, "# DICOM Conformance Statement: Midline %s\n\n", firmwareVersion)
	out.WriteString("Generated from `netdicom/tables.go` by `midline conformance`; do not edit by hand. Sections\n")
	out.WriteString("follow DICOM PS3.2 (Conformance), Annex A.\n\n")
	out.WriteString(overview)
	out.WriteString(tableOfContents(overview + rest))
	out.WriteString(rest)
	_, err := io.WriteString(w, out.String())
	return err
}

// tableOfContents lists the document's numbered section headings (PS3.2's section 2).
func tableOfContents(body string) string {
	var b strings.Builder
	b.WriteString("## 2 Table of contents\n\n")
	for _, line := range strings.Split(body, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			fmt.Fprintf(&b, "- %s\n", line[3:])
		case strings.HasPrefix(line, "### "):
			fmt.Fprintf(&b, "  - %s\n", line[4:])
		}
	}
	return b.String() + "\n"
}

func confOverview(p func(string, ...any)) {
	p("## 1 Overview")
	p("")
	p("Midline is an edge box beside an MR scanner. It receives MR images as a Storage SCP, segments")
	p("them, and sends RT Structure Sets to a planning system as a Storage SCU. Every result it sends")
	p("is an unreviewed draft.")
	p("")
	p("Network services:")
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
	p("Media services: none (section 5).")
	p("")
}

func confIntroduction(version string) func(func(string, ...any)) {
	return func(p func(string, ...any)) {
		p("## 3 Introduction")
		p("")
		p("### 3.1 Revision history")
		p("")
		p("This statement describes firmware %s and is regenerated with every build; the code's own", version)
		p("tables are its source, so it changes exactly when the behaviour does.")
		p("")
		p("### 3.2 Audience and remarks")
		p("")
		p("For hospital IT and the integrators of the scanner and the planning system. The models shipped")
		p("today are trained on phantoms and are not for clinical use; every RT Structure Set is labelled")
		p("as an unapproved draft (StructureSetLabel `AI_DRAFT...`, ApprovalStatus UNAPPROVED).")
		p("")
		p("### 3.3 Abbreviations and references")
		p("")
		p("AE application entity; DIMSE DICOM message service element; PDU protocol data unit; SCP")
		p("service class provider; SCU service class user; TLS transport layer security. References:")
		p("DICOM PS3.2, PS3.4 (storage and verification service classes), PS3.5 (transfer syntaxes),")
		p("PS3.7 (DIMSE), PS3.8 (Upper Layer), PS3.15 (security profiles).")
		p("")
	}
}

func confNetworking(p func(string, ...any)) {
	p("## 4 Networking")
	p("")
	p("### 4.1 Implementation model")
	p("")
	p("One application entity (AE title from `dicom.ae_title`) listens on `dicom.listen` and, with")
	p("`dicom.tls`, on a TLS port. Application data flow: the scanner (or a PACS) sends MR images with")
	p("C-STORE; each instance is written to a spool on local disk before it is acknowledged, grouped")
	p("into series by Series Instance UID, and a series is segmented once it is complete (section")
	p("4.2.3); the resulting RT Structure Set, and with `forward_images` the MR images, are queued in a")
	p("durable outbox and sent with C-STORE to each destination in `destinations[]`. C-ECHO is answered")
	p("at any time and sent by `midline echo`.")
	p("")
	p("### 4.2 AE specifications")
	p("")
	p("#### 4.2.1 Association policies")
	p("")
	p("| item | value |")
	p("|---|---|")
	p("| Application Context Name | %s |", applicationContextUID)
	p("| Implementation Class UID | %s |", ImplementationClassUID)
	p("| Implementation Version Name | %s |", ImplementationVersion)
	p("| Maximum PDU received | `dicom.max_pdu` (default %d, range %d to %d) |", DefaultMaxPDU, MinPDU, MaxPDULimit)
	p("| Number of associations accepted | `dicom.max_associations` (default %d); more are rejected transiently |", DefaultMaxAssociations)
	p("| Number of associations initiated | one at a time per destination and send job |")
	p("| Asynchronous operations window | not supported; answered as 1/1 |")
	p("| SCP/SCU role selection | answered for known classes: the requester may be SCU; Midline never takes the SCU role |")
	p("| Extended negotiation, user identity | ignored |")
	p("")
}

func confInitiation(p func(string, ...any)) {
	p("#### 4.2.2 Association initiation policy (SCU)")
	p("")
	p("Activities: sending results and forwarded images from the DICOM outbox (retried with backoff")
	p("per job, then set aside with its reason), `midline send`, and `midline echo`. Proposed")
	p("presentation contexts:")
	p("")
	p("| abstract syntax | transfer syntaxes proposed | role |")
	p("|---|---|---|")
	p("| Verification | %s | SCU |", strings.Join(tsNames(echoSyntaxes), ", "))
	p("| each SOP class of the files sent (RT Structure Set Storage; with `forward_images`, the MR classes) | the file's own transfer syntax, one context | SCU |")
	p("| the same SOP class | %s, one further context | SCU |", strings.Join(tsNames(uncompressedFallback), ", "))
	p("")
	p("The data set is sent as it is in the file when its own syntax is accepted. When only the")
	p("uncompressed context is accepted, the data set is transcoded (RLE Lossless frames decoded,")
	p("colour by pixel); a file in any other compressed syntax the peer refuses fails with a clear")
	p("error, the rest of the association goes on. C-STORE answers: Success and warning statuses")
	p("(0xB000-0xBFFF) count as sent; any other status is a failure reported with its code and error")
	p("comment. Timeouts: %s for the connection and for each answer.", defaultClientTimeout)
	p("")
}

func confAcceptance(p func(string, ...any)) {
	p("#### 4.2.3 Association acceptance policy (SCP)")
	p("")
	p("| condition | A-ASSOCIATE-RJ result, source, reason |")
	p("|---|---|")
	for _, r := range acceptancePolicy {
		p("| %s | %d, %d, %d (%s) |", r.When, r.Reject.Result, r.Reject.Source, r.Reject.Reason, rejectReason(r.Reject.Source, r.Reject.Reason))
	}
	p("")
	p("Accepted presentation contexts: every SOP class in the table of section 1 with any of these")
	p("transfer syntaxes; when a context offers several, the requester's first one that is listed")
	p("here is accepted. Other SOP classes are refused per context (result 3), contexts offering none")
	p("of these syntaxes with result 4. Verification accepts only the three uncompressed syntaxes.")
	p("")
	p("| transfer syntax | UID |")
	p("|---|---|")
	for _, ts := range TransferSyntaxes {
		p("| %s | %s |", ts.Name, ts.UID)
	}
	p("")
	p("SOP specific conformance, Verification SCP: C-ECHO is answered 0x0000 (Success).")
	p("")
	p("SOP specific conformance, Storage SCP (level 0, no attribute is coerced; signatures are")
	p("neither checked nor removed). What the receiver does with each class:")
	p("")
	p("| SOP class | disposition |")
	p("|---|---|")
	for _, c := range SOPClasses {
		p("| %s | %s |", c.Name, c.Disposition)
	}
	p("")
	p("C-STORE status codes:")
	p("")
	p("| status | meaning | when |")
	p("|---|---|---|")
	for _, s := range StoreStatuses {
		p("| %s | %s | %s |", fmtStatus(s.Status), s.Meaning, s.When)
	}
	p("")
	p("Instances are stored with the data set bytes as received. A re-sent SOP Instance UID with")
	p("identical bytes is acknowledged and kept once; different bytes replace the stored copy. A")
	p("series is complete after `dicom.series_timeout` without a new instance, earlier when")
	p("ImagesInAcquisition instances have arrived or the sending association is released (annex 8.1).")
	p("")
}

func confInterfaces(p func(string, ...any)) {
	p("### 4.3 Network interfaces")
	p("")
	p("The box's Ethernet interface; TCP/IP over IPv4 or IPv6 (PS3.8 Upper Layer); no-delay set on")
	p("every connection. DICOM TLS on a separate port (section 7).")
	p("")
	p("### 4.4 Configuration")
	p("")
	p("AE titles and presentation addresses are configuration; nothing is learnt from the network.")
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
	p("| `dicom.disk_low_watermark` | free bytes below which C-STORE is refused with 0xA700 | off (`midline serve`: 512 MiB) |")
	p("| `retention.spool` | age after which processed series leave the spool | kept |")
	p("| `destinations[]` (`name`, `ae_title`, `host`, `port`, `tls`, `ca`, `client_cert`, `client_key`) | Storage SCU peers | none |")
	p("")
	p("Timers: ARTIM %s (wait for A-ASSOCIATE-RQ), idle timeout %s (between PDUs of an", DefaultARTIM, DefaultIdleTimeout)
	p("association); an association silent longer is aborted.")
	p("")
}

func confOtherSections(p func(string, ...any)) {
	p("## 5 Media interchange")
	p("")
	p("None. The spool holds Part 10 files for internal use only; it is not a DICOM File-set.")
	p("")
	p("## 6 Support of character sets")
	p("")
	p("Stored data sets are not decoded or re-encoded; any Specific Character Set is kept as received.")
	p("")
	p("## 7 Security")
	p("")
	p("DICOM TLS (PS3.15 BCP 195, TLS 1.2 or later) on a second listener when `dicom.tls` is set;")
	p("with `dicom.tls.client_ca`, callers must present a certificate signed by that CA. As a Storage")
	p("SCU, a destination with `tls: true` is reached over TLS 1.2 or later; its certificate must chain")
	p("to the CAs of its `ca` (default: the system's roots) and name its host, and `client_cert` is")
	p("presented when it asks for one. No user identity negotiation. Association level: the called")
	p("AE title and `dicom.allowed_callers` (section 4.2.3).")
	p("")
}

func confAnnexes(p func(string, ...any)) {
	p("## 8 Annexes")
	p("")
	p("### 8.1 IOD contents")
	p("")
	p("Created SOP instances: RT Structure Set Storage, written by the contour package (draft labels,")
	p("provenance, derived UIDs: docs/contracts.md and the project's design notes). Usage of")
	p("attributes from received IODs, the only attributes the receiver reads:")
	p("")
	p("| tag | attribute | use |")
	p("|---|---|---|")
	for _, a := range ReceivedAttributes {
		p("| %s | %s | %s |", a.Tag, a.Name, a.Usage)
	}
	p("")
	p("Coerced or modified fields: none; the data set is stored as received.")
	p("")
	p("### 8.2 Private attributes, coded terminology, grayscale consistency")
	p("")
	p("No private attributes are created or read; no coded terminology or templates beyond the RT")
	p("Structure Set's own; no Grayscale Standard Display Function support (no display).")
	p("")
	p("### 8.3 Private SOP classes and transfer syntaxes")
	p("")
	p("Private SOP classes accepted and set aside, never processed:")
	p("")
	for _, c := range SOPClasses {
		if !strings.HasPrefix(c.UID, "1.2.840.10008.") {
			p("- %s (%s)", c.Name, c.UID)
		}
	}
	p("")
	p("Private transfer syntaxes: none.")
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
