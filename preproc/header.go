package preproc

import (
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Acquisition holds what Classify reads: MR physics first, then names. Times are in ms; 0
// means absent. It is also the record format of the classification corpus (testdata).
type Acquisition struct {
	Modality             string   `json:"modality,omitempty"`
	Manufacturer         string   `json:"manufacturer,omitempty"`
	SeriesDescription    string   `json:"series_description,omitempty"`
	ProtocolName         string   `json:"protocol_name,omitempty"`
	SequenceName         string   `json:"sequence_name,omitempty"`
	ImageType            []string `json:"image_type,omitempty"`
	ScanningSequence     []string `json:"scanning_sequence,omitempty"`
	SequenceVariant      []string `json:"sequence_variant,omitempty"`
	ScanOptions          []string `json:"scan_options,omitempty"`
	MRAcquisitionType    string   `json:"mr_acquisition_type,omitempty"`
	RepetitionTime       float64  `json:"tr,omitempty"`
	EchoTime             float64  `json:"te,omitempty"`
	InversionTime        float64  `json:"ti,omitempty"`
	ContrastBolusAgent   string   `json:"contrast_bolus_agent,omitempty"`
	ContrastAdministered string   `json:"contrast_administered,omitempty"` // Enhanced MR: YES or NO
}

// patientStudyTags are copied for the RT Structure Set: Patient, General Study and Patient
// Study modules (besides every group 0010 element).
var patientStudyTags = []tag.Tag{
	tag.SpecificCharacterSet, tag.StudyDate, tag.StudyTime, tag.AccessionNumber,
	tag.ReferringPhysicianName, tag.StudyDescription, tag.StudyInstanceUID, tag.StudyID,
	{Group: 0x0008, Element: 0x0051}, // IssuerOfAccessionNumberSequence
}

func makeHeader(in *instance) Header {
	e := in.elems
	h := Header{
		SOPClassUID: in.sopClass, StudyInstanceUID: in.study, SeriesInstanceUID: in.series,
		FrameOfReferenceUID: in.forUID, TransferSyntaxUID: in.ts,
		Modality: str(e, tag.Modality), Manufacturer: str(e, tag.Manufacturer),
		SeriesDescription: str(e, tag.SeriesDescription), ProtocolName: str(e, tag.ProtocolName),
		SeriesNumber: str(e, tag.SeriesNumber), ImageType: strsOf(find(e, tag.ImageType)),
	}
	for _, el := range e {
		if el.Tag.Group == 0x0010 || containsTag(patientStudyTags, el.Tag) {
			h.PatientStudy = append(h.PatientStudy, el)
		}
	}
	h.Acquisition = acquisition(e)
	return h
}

func containsTag(ts []tag.Tag, t tag.Tag) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// acquisition reads the classification facts from classic attributes, falling back to the
// Enhanced MR functional groups (shared, then the first frame's).
func acquisition(e []*dicom.Element) Acquisition {
	a := Acquisition{
		Modality: str(e, tag.Modality), Manufacturer: str(e, tag.Manufacturer),
		SeriesDescription: str(e, tag.SeriesDescription), ProtocolName: str(e, tag.ProtocolName),
		SequenceName:     str(e, tag.SequenceName),
		ImageType:        strsOf(find(e, tag.ImageType)),
		ScanningSequence: strsOf(find(e, tag.ScanningSequence)), SequenceVariant: strsOf(find(e, tag.SequenceVariant)),
		ScanOptions: strsOf(find(e, tag.ScanOptions)), MRAcquisitionType: str(e, tag.MRAcquisitionType),
		RepetitionTime: num(e, tag.RepetitionTime), EchoTime: num(e, tag.EchoTime), InversionTime: num(e, tag.InversionTime),
		ContrastBolusAgent: str(e, tag.ContrastBolusAgent),
	}
	a.ContrastAdministered = contrastUsage(e)
	var groups [][]*dicom.Element
	if sh := items(find(e, tag.SharedFunctionalGroupsSequence)); len(sh) > 0 {
		groups = append(groups, sh[0])
	}
	if pf := items(find(e, tag.PerFrameFunctionalGroupsSequence)); len(pf) > 0 {
		groups = append(groups, pf[0])
	}
	if len(groups) == 0 {
		return a
	}
	deepNum := func(t tag.Tag) float64 {
		for _, g := range groups {
			if el := deep(g, t, 0); el != nil {
				return numOf(el)
			}
		}
		return 0
	}
	if a.RepetitionTime == 0 {
		a.RepetitionTime = deepNum(tag.RepetitionTime)
	}
	if a.EchoTime == 0 {
		a.EchoTime = deepNum(tag.EffectiveEchoTime)
	}
	if a.InversionTime == 0 {
		a.InversionTime = deepNum(tag.InversionTimes)
	}
	if a.SequenceName == "" {
		a.SequenceName = str(e, tag.PulseSequenceName)
	}
	if len(a.ScanningSequence) == 0 {
		// Enhanced MR: EchoPulseSequence SPIN, GRADIENT or BOTH; InversionRecovery YES or NO.
		switch str(e, tag.EchoPulseSequence) {
		case "SPIN":
			a.ScanningSequence = []string{"SE"}
		case "GRADIENT", "BOTH":
			a.ScanningSequence = []string{"GR"}
		}
		if str(e, tag.InversionRecovery) == "YES" || a.InversionTime > 0 {
			a.ScanningSequence = append(a.ScanningSequence, "IR")
		}
	}
	if a.MRAcquisitionType == "" {
		a.MRAcquisitionType = str(e, tag.MRAcquisitionType)
	}
	for _, g := range groups {
		if el := deep(g, tag.ContrastBolusAgentAdministered, 0); el != nil && a.ContrastAdministered == "" {
			a.ContrastAdministered = strings.TrimSpace(strings.Join(strsOf(el), ""))
		}
	}
	return a
}

// contrastUsage reads Enhanced MR's top-level Contrast/Bolus Usage Sequence: YES when any
// agent was administered, NO when the items say no, "" without the sequence.
func contrastUsage(e []*dicom.Element) string {
	v := ""
	for _, it := range items(find(e, tag.ContrastBolusUsageSequence)) {
		switch str(it, tag.ContrastBolusAgentAdministered) {
		case "YES":
			return "YES"
		case "NO":
			v = "NO"
		}
	}
	return v
}

// deep finds t anywhere below elems (depth-first, bounded).
func deep(elems []*dicom.Element, t tag.Tag, depth int) *dicom.Element {
	if depth > maxDepth {
		return nil
	}
	for _, el := range elems {
		if el.Tag == t {
			return el
		}
		for _, it := range items(el) {
			if x := deep(it, t, depth+1); x != nil {
				return x
			}
		}
	}
	return nil
}

func num(e []*dicom.Element, t tag.Tag) float64 { return numOf(find(e, t)) }

func numOf(el *dicom.Element) float64 {
	if el == nil {
		return 0
	}
	switch v := el.Value.GetValue().(type) {
	case []string:
		if len(v) > 0 {
			f, err := strconv.ParseFloat(strings.TrimSpace(v[0]), 64)
			if err == nil && f > 0 && f < 1e6 {
				return f
			}
		}
	case []float64:
		if len(v) > 0 && v[0] > 0 && v[0] < 1e6 {
			return v[0]
		}
	}
	return 0
}
