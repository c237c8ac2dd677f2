package netdicom

// The tables in this file are the single source of what Midline accepts and answers. The
// association logic reads them, and the conformance statement (conformance.go) is generated
// from them, so the document cannot drift from the code.

// Disposition says what the receiver does with instances of a SOP class.
type Disposition int

const (
	// Process marks image classes that become model input.
	Process Disposition = iota + 1
	// SetAside marks objects scanners send beside images: stored, never fed to a model.
	SetAside
	// VerifyOnly is the Verification SOP class (C-ECHO).
	VerifyOnly
)

func (d Disposition) String() string {
	switch d {
	case Process:
		return "stored, assembled into series, processed"
	case SetAside:
		return "stored and set aside, never processed"
	case VerifyOnly:
		return "verification only"
	}
	return "unknown"
}

// SOPClass is one abstract syntax the receiver knows.
type SOPClass struct {
	UID         string
	Name        string
	Disposition Disposition
}

// Well-known UIDs used by the code.
const (
	VerificationUID        = "1.2.840.10008.1.1"
	MRImageStorageUID      = "1.2.840.10008.5.1.4.1.1.4"
	EnhancedMRStorageUID   = "1.2.840.10008.5.1.4.1.1.4.1"
	LegacyEnhancedMRUID    = "1.2.840.10008.5.1.4.1.1.4.4"
	RTStructureSetUID      = "1.2.840.10008.5.1.4.1.1.481.3"
	applicationContextUID  = "1.2.840.10008.3.1.1.1"
	ImplementationClassUID = "2.25.273054383218401225279783142511122180040" // a UUID-derived UID (PS3.5 B.2)
	ImplementationVersion  = "MIDLINE_010"
)

// SOPClasses lists every abstract syntax the receiver accepts as SCP; any other is refused per
// presentation context (result 3, abstract syntax not supported).
var SOPClasses = []SOPClass{
	{VerificationUID, "Verification", VerifyOnly},
	{MRImageStorageUID, "MR Image Storage", Process},
	{EnhancedMRStorageUID, "Enhanced MR Image Storage", Process},
	{LegacyEnhancedMRUID, "Legacy Converted Enhanced MR Image Storage", Process},
	{"1.2.840.10008.5.1.4.1.1.4.2", "MR Spectroscopy Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.4.3", "Enhanced MR Color Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.7", "Secondary Capture Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.7.1", "Multi-frame Single Bit Secondary Capture Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.7.2", "Multi-frame Grayscale Byte Secondary Capture Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.7.3", "Multi-frame Grayscale Word Secondary Capture Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.7.4", "Multi-frame True Color Secondary Capture Image Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.66", "Raw Data Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.88.11", "Basic Text SR Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.88.22", "Enhanced SR Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.88.33", "Comprehensive SR Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.88.67", "X-Ray Radiation Dose SR Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.11.1", "Grayscale Softcopy Presentation State Storage", SetAside},
	{"1.2.840.10008.5.1.4.1.1.11.2", "Color Softcopy Presentation State Storage", SetAside},
	{"1.3.46.670589.11.0.0.12.1", "Philips Private MR Spectrum Storage", SetAside},
	{"1.3.46.670589.11.0.0.12.2", "Philips Private MR Series Data Storage", SetAside},
	{"1.3.46.670589.11.0.0.12.4", "Philips Private MR Examcard Storage", SetAside},
	{"1.3.12.2.1107.5.9.1", "Siemens CSA Non-Image Storage", SetAside},
}

// TransferSyntax is one transfer syntax the receiver accepts.
type TransferSyntax struct {
	UID      string
	Name     string
	implicit bool
	big      bool
	deflated bool
	rle      bool
}

// Transfer syntax UIDs.
const (
	ImplicitVRLittleEndian = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
	ExplicitVRBigEndian    = "1.2.840.10008.1.2.2"
	DeflatedExplicitVRLE   = "1.2.840.10008.1.2.1.99"
	RLELossless            = "1.2.840.10008.1.2.5"
)

// TransferSyntaxes lists the transfer syntaxes the receiver accepts, for every storage class.
// Compressed syntaxes it cannot decode in Go are absent, so that senders fall back to an
// uncompressed one. When a context offers several, the caller's order of preference wins.
var TransferSyntaxes = []TransferSyntax{
	{UID: ImplicitVRLittleEndian, Name: "Implicit VR Little Endian", implicit: true},
	{UID: ExplicitVRLittleEndian, Name: "Explicit VR Little Endian"},
	{UID: ExplicitVRBigEndian, Name: "Explicit VR Big Endian (retired)", big: true},
	{UID: DeflatedExplicitVRLE, Name: "Deflated Explicit VR Little Endian", deflated: true},
	{UID: RLELossless, Name: "RLE Lossless", rle: true},
}

// Status is a DIMSE status code (PS3.7 Annex C).
type Status uint16

// The status codes Midline sends or understands.
const (
	StatusSuccess          Status = 0x0000
	StatusOutOfResources   Status = 0xA700
	StatusDataSetMismatch  Status = 0xA900
	StatusCannotUnderstand Status = 0xC000
	StatusSOPClassRefused  Status = 0x0122
	StatusProcessingFail   Status = 0x0110
	StatusDuplicateInvoke  Status = 0x0210
	StatusUnrecognizedOp   Status = 0x0211
)

// StatusEntry documents when the storage SCP answers a status.
type StatusEntry struct {
	Status  Status
	Meaning string
	When    string
}

// StoreStatuses lists every status the C-STORE SCP sends, and when.
var StoreStatuses = []StatusEntry{
	{StatusSuccess, "Success", "after the instance is written, fsynced, renamed into the spool and its folder fsynced"},
	{StatusOutOfResources, "Refused: Out of Resources", "free disk space under dicom.disk_low_watermark when the request arrives; nothing is written"},
	{StatusDataSetMismatch, "Error: Data Set does not match SOP Class", "the data set's SOP Class or SOP Instance UID differs from the command's"},
	{StatusCannotUnderstand, "Error: Cannot understand", "the data set cannot be parsed, or the command lacks a valid SOP Instance UID"},
	{StatusProcessingFail, "Processing failure", "the spool could not write, fsync or rename the instance"},
	{StatusSOPClassRefused, "Refused: SOP Class not supported", "the command's SOP class differs from its presentation context's abstract syntax"},
}

// String renders a status as the hex code with its meaning where known.
func (s Status) String() string {
	for _, e := range StoreStatuses {
		if e.Status == s {
			return fmtStatus(s) + " (" + e.Meaning + ")"
		}
	}
	switch {
	case s&0xF000 == 0xB000:
		return fmtStatus(s) + " (Warning)"
	case s&0xF000 == 0xA000 || s&0xF000 == 0xC000:
		return fmtStatus(s) + " (Failure)"
	}
	return fmtStatus(s)
}

func fmtStatus(s Status) string {
	const hex = "0123456789ABCDEF"
	return "0x" + string([]byte{hex[s>>12], hex[s>>8&0xF], hex[s>>4&0xF], hex[s&0xF]})
}

// Success reports whether the status means the operation succeeded (Success or a Warning).
func (s Status) Success() bool {
	return s == StatusSuccess || s&0xF000 == 0xB000 || s == 0x0107 || s == 0x0116
}

func lookupSOPClass(uid string) (SOPClass, bool) {
	for _, c := range SOPClasses {
		if c.UID == uid {
			return c, true
		}
	}
	return SOPClass{}, false
}

func lookupTransferSyntax(uid string) (TransferSyntax, bool) {
	for _, t := range TransferSyntaxes {
		if t.UID == uid {
			return t, true
		}
	}
	return TransferSyntax{}, false
}

// echoSyntaxes are the transfer syntaxes the C-ECHO SCU proposes.
var echoSyntaxes = []string{ImplicitVRLittleEndian}

// ReceivedAttribute is one attribute the receiver reads from a received data set, and why.
type ReceivedAttribute struct {
	Tag   string
	Name  string // the HeadInfo field that holds it
	Usage string
}

// ReceivedAttributes lists every attribute netdicom reads from a received instance (HeadInfo);
// nothing else is read or changed on the way to the spool.
var ReceivedAttributes = []ReceivedAttribute{
	{"(0008,0016)", "SOPClassUID", "must equal the C-STORE command's Affected SOP Class UID (else 0xA900); selects the disposition"},
	{"(0008,0018)", "SOPInstanceUID", "must equal the command's Affected SOP Instance UID (else 0xA900); names the spool file, makes re-sends idempotent"},
	{"(0020,000D)", "StudyInstanceUID", "read with the others; not used to accept, store or group"},
	{"(0020,000E)", "SeriesInstanceUID", "groups instances into a series (series assembly)"},
	{"(0008,0060)", "Modality", "read with the others; not used to accept, store or group"},
	{"(0020,0013)", "InstanceNumber", "orders a series' instances in its event (then SOP Instance UID)"},
	{"(0020,1002)", "ImagesInAcquisition", "expected-count hint: a series with that many instances is ready before its quiet period"},
	{"(0028,0008)", "NumberOfFrames", "above 1 (Enhanced MR), the end of the association that brought it releases the series early"},
}
