package contour

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"golang.org/x/text/encoding/charmap"

	"github.com/midline-rt/midline/netdicom"
	"github.com/midline-rt/midline/preproc"
)

// SOP classes an RT Structure Set names.
const (
	RTStructureSetStorage = "1.2.840.10008.5.1.4.1.1.481.3"
	// detachedStudyManagement is what RTReferencedStudySequence conventionally references
	// (retired, still expected by planning systems).
	detachedStudyManagement = "1.2.840.10008.3.1.2.3.1"
	explicitVRLittleEndian  = "1.2.840.10008.1.2.1"
	enhancedMRImageStorage  = "1.2.840.10008.5.1.4.1.1.4.1"
	legacyEnhancedMRStorage = "1.2.840.10008.5.1.4.1.1.4.4"
)

// Character sets a destination may ask for (destinations[].profile.charset). CharsetSource,
// the default, copies the source's Specific Character Set and the bytes of its Patient and
// Study text as they were received: the planning system already holds the images in that
// character set. The others transcode the text as decoded by suyashkumar/dicom, refused for a
// source that uses ISO 2022 code extensions, which that decoder gets wrong (escape sequences
// left in Korean names, half-width katakana lost; see charset_test.go).
const (
	CharsetSource = ""
	CharsetUTF8   = "ISO_IR 192"
	CharsetLatin1 = "ISO_IR 100"
	CharsetASCII  = "ISO_IR 6"
)

// ROIData is one ROI to write.
type ROIData struct {
	Number          int
	Name            string // at most 16 characters
	Description     string
	InterpretedType string // GTV; empty for the review ROI
	Color           [3]uint8
	Slices          []SliceContours
}

// Provenance says what made a result (DESIGN.md, Outputs that a planner sees).
type Provenance struct {
	DeviceID                        string
	FirmwareVersion, FirmwareCommit string
	ModelName, ModelVersion         string
	BundleSHA256                    string
	TFLiteVersion, Engine           string
	ClinicalUse                     bool
	Parameters                      string // the model's post-processing settings, for AlgorithmParameters
}

// StructureSet is everything an RT Structure Set holds besides the source's own attributes.
type StructureSet struct {
	Source   *preproc.Volume
	ROIs     []ROIData
	UIDs     UIDs
	Revision int // 1 for the first result of a series; a superseding result counts up
	Created  time.Time
	Prov     Provenance
	Holes    HoleMode
	Charset  string // CharsetSource (default, also ""), CharsetUTF8, CharsetLatin1 or CharsetASCII
	// Text is the source's Patient and Study text as encoded (ReadSourceText); required for
	// CharsetSource.
	Text *SourceText
}

// Label is the StructureSetLabel: AI_DRAFT, with the revision when it supersedes another.
func (s *StructureSet) Label() string {
	if s.Revision > 1 {
		return fmt.Sprintf("AI_DRAFT v%d", s.Revision)
	}
	return "AI_DRAFT"
}

// Draft is the wording every result carries.
func (s *StructureSet) Draft() string { return DraftWording(s.Prov.ClinicalUse) }

// DraftWording is the draft warning of a model's results: "auto-generated, NOT REVIEWED", and
// ", NOT FOR CLINICAL USE" for a model without clinical_use.
func DraftWording(clinicalUse bool) string {
	d := "auto-generated, NOT REVIEWED"
	if !clinicalUse {
		d += ", NOT FOR CLINICAL USE"
	}
	return d
}

// ErrCharset marks a source attribute the destination's character set cannot represent.
var ErrCharset = errors.New("contour: character set cannot represent a patient or study attribute")

// WriteRTStruct writes the structure set as a Part 10 file in Explicit VR Little Endian.
func WriteRTStruct(w io.Writer, s *StructureSet) error {
	ds, err := s.dataset()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := dicom.Write(&buf, ds); err != nil {
		return fmt.Errorf("contour: encode RT Structure Set: %w", err)
	}
	_, err = w.Write(buf.Bytes())
	return err
}

type builder struct{ err error }

func (b *builder) el(t tag.Tag, v any) *dicom.Element {
	e, err := dicom.NewElement(t, v)
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("contour: element %v: %w", t, err)
	}
	if e != nil && e.RawValueRepresentation == "SQ" {
		e.ValueLength = tag.VLUndefinedLength
	}
	return e
}

func (b *builder) str(t tag.Tag, v ...string) *dicom.Element { return b.el(t, v) }

func (b *builder) seq(t tag.Tag, items ...[]*dicom.Element) *dicom.Element {
	for _, it := range items {
		sortElements(it)
	}
	return b.el(t, items)
}

func (s *StructureSet) dataset() (dicom.Dataset, error) {
	v := s.Source
	if v == nil || len(v.SOPInstanceUIDs) != v.Slices() {
		return dicom.Dataset{}, fmt.Errorf("contour: structure set without its source slices")
	}
	h := v.Header
	if h.FrameOfReferenceUID == "" || h.StudyInstanceUID == "" || h.SeriesInstanceUID == "" {
		return dicom.Dataset{}, fmt.Errorf("contour: source series lacks a Study, Series or Frame of Reference UID")
	}
	charset := s.Charset
	b := &builder{}
	date, tm := s.Created.Format("20060102"), s.Created.Format("150405")
	var els []*dicom.Element

	// Patient, General Study and Patient Study modules: the source's own attributes.
	have := map[tag.Tag]bool{}
	srcCharset := ""
	for _, e := range h.PatientStudy {
		if e.Tag == tag.SpecificCharacterSet {
			srcCharset = strings.Join(dicom.MustGetStrings(e.Value), `\`)
		}
	}
	for _, e := range h.PatientStudy {
		if e.Tag == tag.SpecificCharacterSet || e.RawValueRepresentation == "UN" {
			continue
		}
		var c *dicom.Element
		var err error
		switch {
		case charset == CharsetSource:
			c, err = s.Text.copyRaw(e)
		case strings.Contains(srcCharset, "2022"):
			err = fmt.Errorf("%w: source character set %q uses ISO 2022 code extensions; only %q copies it faithfully", ErrCharset, srcCharset, CharsetSource)
		default:
			c, err = recode(e, charset)
		}
		if err != nil {
			return dicom.Dataset{}, err
		}
		if c != nil {
			els = append(els, c)
			have[e.Tag] = true
		}
	}
	for _, t := range []tag.Tag{tag.PatientName, tag.PatientID, tag.PatientBirthDate, tag.PatientSex,
		tag.StudyDate, tag.StudyTime, tag.ReferringPhysicianName, tag.StudyID, tag.AccessionNumber} {
		if !have[t] {
			els = append(els, b.str(t))
		}
	}
	if !have[tag.StudyInstanceUID] {
		els = append(els, b.str(tag.StudyInstanceUID, h.StudyInstanceUID))
	}
	switch {
	case charset == CharsetSource && s.Text != nil && len(s.Text.Charset) > 0:
		els = append(els, b.str(tag.SpecificCharacterSet, string(s.Text.Charset)))
	case charset != CharsetSource && charset != CharsetASCII:
		els = append(els, b.str(tag.SpecificCharacterSet, charset))
	}

	draft := s.Draft()
	p := s.Prov
	// One LO value (at most 64 characters) per fact, none cut: the commit and the bundle's
	// 64-digit sha256 would not fit beside a label.
	sw := []string{
		trim64("midline " + p.FirmwareVersion),
		trim64("commit " + p.FirmwareCommit),
		trim64(p.ModelName + " " + p.ModelVersion),
		trim64(p.BundleSHA256),
		trim64("tflite " + p.TFLiteVersion),
		trim64("engine " + p.Engine),
	}
	els = append(els,
		// SOP Common
		b.str(tag.SOPClassUID, RTStructureSetStorage),
		b.str(tag.SOPInstanceUID, s.UIDs.SOPInstanceUID),
		b.str(tag.InstanceCreationDate, date), b.str(tag.InstanceCreationTime, tm),
		// RT Series
		b.str(tag.Modality, "RTSTRUCT"),
		b.str(tag.SeriesInstanceUID, s.UIDs.SeriesInstanceUID),
		b.str(tag.SeriesNumber, "9001"),
		b.str(tag.SeriesDate, date), b.str(tag.SeriesTime, tm),
		b.str(tag.SeriesDescription, trim64("AI GTV "+draft)),
		b.str(tag.OperatorsName),
		// General Equipment
		b.str(tag.Manufacturer, "Midline"),
		b.str(tag.ManufacturerModelName, "Midline DMG contouring"),
		b.str(tag.DeviceSerialNumber, p.DeviceID),
		b.str(tag.SoftwareVersions, sw...),
		// Structure Set
		b.str(tag.StructureSetLabel, s.Label()),
		b.str(tag.StructureSetName, trim64(p.ModelName+" "+p.ModelVersion)),
		b.str(tag.StructureSetDescription, fmt.Sprintf("Draft contours by %s %s on series %s, %s.",
			p.ModelName, p.ModelVersion, asciiOr(h.SeriesDescription, "number "+h.SeriesNumber), draft)),
		b.str(tag.InstanceNumber, strconv.Itoa(max(1, s.Revision))),
		b.str(tag.StructureSetDate, date), b.str(tag.StructureSetTime, tm),
		b.seq(tag.ReferencedFrameOfReferenceSequence, s.referencedFrame(b)),
		// Frame of Reference: the MR's (registration to the planning CT is the planning
		// system's job).
		b.str(tag.FrameOfReferenceUID, h.FrameOfReferenceUID),
		b.str(tag.PositionReferenceIndicator),
		// Approval
		b.str(tag.ApprovalStatus, "UNAPPROVED"),
	)
	var ssroi, roic, obs [][]*dicom.Element
	for _, r := range s.ROIs {
		if n := len(r.Name); n == 0 || n > 16 || asciiOr(r.Name, "") == "" {
			return dicom.Dataset{}, fmt.Errorf("contour: ROI name %q must have 1 to 16 printable ASCII characters", r.Name)
		}
		num := strconv.Itoa(r.Number)
		ssroi = append(ssroi, []*dicom.Element{
			b.str(tag.ROINumber, num),
			b.str(tag.ReferencedFrameOfReferenceUID, h.FrameOfReferenceUID),
			b.str(tag.ROIName, r.Name),
			b.str(tag.ROIDescription, trimTo(r.Description, 1024)), // ST
			b.str(tag.ROIGenerationAlgorithm, "AUTOMATIC"),
			// LO, 64 characters: the warning first, so that a long model name cannot push it out.
			b.str(tag.ROIGenerationDescription, trim64(fmt.Sprintf("NOT REVIEWED: %s %s %s", p.ModelName, p.ModelVersion, p.Engine))),
			b.seq(tag.ROIDerivationAlgorithmIdentificationSequence, []*dicom.Element{
				b.seq(tag.AlgorithmFamilyCodeSequence, []*dicom.Element{
					b.str(tag.CodeValue, "123110"),
					b.str(tag.CodingSchemeDesignator, "DCM"),
					b.str(tag.CodeMeaning, "Artificial Intelligence"),
				}),
				b.str(tag.AlgorithmName, trim64(p.ModelName)),
				b.str(tag.AlgorithmVersion, trim64(p.ModelVersion)),
				b.str(tag.AlgorithmParameters, fmt.Sprintf("bundle sha256 %s; %s", p.BundleSHA256, p.Parameters)),
				b.str(tag.AlgorithmSource, "Midline"),
			}),
		})
		item := []*dicom.Element{
			b.str(tag.ReferencedROINumber, num),
			b.str(tag.ROIDisplayColor, strconv.Itoa(int(r.Color[0])), strconv.Itoa(int(r.Color[1])), strconv.Itoa(int(r.Color[2]))),
		}
		contours, err := s.contours(b, r)
		if err != nil {
			return dicom.Dataset{}, err
		}
		if len(contours) > 0 {
			item = append(item, b.seq(tag.ContourSequence, contours...))
		}
		roic = append(roic, item)
		obs = append(obs, []*dicom.Element{
			b.str(tag.ObservationNumber, num),
			b.str(tag.ReferencedROINumber, num),
			b.str(tag.RTROIInterpretedType, r.InterpretedType),
			b.str(tag.ROIInterpreter),
		})
	}
	els = append(els,
		b.seq(tag.StructureSetROISequence, ssroi...),
		b.seq(tag.ROIContourSequence, roic...),
		b.seq(tag.RTROIObservationsSequence, obs...),
		// File meta
		b.el(tag.FileMetaInformationVersion, []byte{0, 1}),
		b.str(tag.MediaStorageSOPClassUID, RTStructureSetStorage),
		b.str(tag.MediaStorageSOPInstanceUID, s.UIDs.SOPInstanceUID),
		b.str(tag.TransferSyntaxUID, explicitVRLittleEndian),
		b.str(tag.ImplementationClassUID, netdicom.ImplementationClassUID),
		b.str(tag.ImplementationVersionName, netdicom.ImplementationVersion),
	)
	if b.err != nil {
		return dicom.Dataset{}, b.err
	}
	sortElements(els)
	return dicom.Dataset{Elements: els}, nil
}

// multiFrame says whether the source images are multi-frame (Enhanced MR), whose references
// carry a ReferencedFrameNumber.
func (s *StructureSet) multiFrame() bool {
	c := s.Source.Header.SOPClassUID
	return c == enhancedMRImageStorage || c == legacyEnhancedMRStorage
}

func (s *StructureSet) imageRef(b *builder, sop string, frame int) []*dicom.Element {
	ref := []*dicom.Element{
		b.str(tag.ReferencedSOPClassUID, s.Source.Header.SOPClassUID),
		b.str(tag.ReferencedSOPInstanceUID, sop),
	}
	if s.multiFrame() {
		ref = append(ref, b.str(tag.ReferencedFrameNumber, strconv.Itoa(frame)))
	}
	return ref
}

// referencedFrame lists every slice of the source series, as planning systems match the
// structure set to their images through it.
func (s *StructureSet) referencedFrame(b *builder) []*dicom.Element {
	v := s.Source
	var imgs [][]*dicom.Element
	for k, sop := range v.SOPInstanceUIDs {
		frame := 1
		if len(v.Frames) == len(v.SOPInstanceUIDs) {
			frame = v.Frames[k]
		}
		imgs = append(imgs, s.imageRef(b, sop, frame))
	}
	return []*dicom.Element{
		b.str(tag.FrameOfReferenceUID, v.Header.FrameOfReferenceUID),
		b.seq(tag.RTReferencedStudySequence, []*dicom.Element{
			b.str(tag.ReferencedSOPClassUID, detachedStudyManagement),
			b.str(tag.ReferencedSOPInstanceUID, v.Header.StudyInstanceUID),
			b.seq(tag.RTReferencedSeriesSequence, []*dicom.Element{
				b.str(tag.SeriesInstanceUID, v.Header.SeriesInstanceUID),
				b.seq(tag.ContourImageSequence, imgs...),
			}),
		}),
	}
}

func (s *StructureSet) contours(b *builder, r ROIData) ([][]*dicom.Element, error) {
	geom := "CLOSED_PLANAR"
	if s.Holes == HolesXOR {
		geom = "CLOSEDPLANAR_XOR"
	}
	var items [][]*dicom.Element
	n := 0
	for _, sc := range r.Slices {
		for _, poly := range sc.Polygons {
			if len(poly.Points) < 3 {
				continue
			}
			n++
			data := make([]string, 0, 3*len(poly.Points))
			size := 0
			for _, q := range poly.Points {
				for _, x := range q {
					d := FormatDS(x)
					data = append(data, d)
					size += len(d) + 1
				}
			}
			if size > 0xFFFE {
				return nil, fmt.Errorf("contour: ROI %s slice %d: ContourData of %d bytes exceeds the element length limit", r.Name, sc.Slice, size)
			}
			items = append(items, []*dicom.Element{
				b.seq(tag.ContourImageSequence, s.imageRef(b, sc.SOPInstanceUID, sc.Frame)),
				b.str(tag.ContourGeometricType, geom),
				b.str(tag.NumberOfContourPoints, strconv.Itoa(len(poly.Points))),
				b.str(tag.ContourNumber, strconv.Itoa(n)),
				b.str(tag.ContourData, data...),
			})
		}
	}
	return items, nil
}

// FormatDS renders a coordinate as a Decimal String of at most 16 characters: 0.1 micrometre
// resolution, trailing zeros dropped.
func FormatDS(x float64) string {
	for prec := 4; prec >= 0; prec-- {
		s := strconv.FormatFloat(x, 'f', prec, 64)
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		if s == "-0" {
			s = "0"
		}
		if len(s) <= 16 {
			return s
		}
	}
	return strconv.FormatFloat(x, 'g', 10, 64)
}

func trim64(s string) string { return trimTo(s, 64) }

// trimTo cuts s to n bytes, the limit of its value representation.
func trimTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func sortElements(els []*dicom.Element) {
	slices.SortStableFunc(els, func(a, b *dicom.Element) int {
		if a.Tag.Group != b.Tag.Group {
			return int(a.Tag.Group) - int(b.Tag.Group)
		}
		return int(a.Tag.Element) - int(b.Tag.Element)
	})
}

// charsetVRs are the VRs whose values the Specific Character Set governs.
var charsetVRs = map[string]bool{"PN": true, "LO": true, "SH": true, "ST": true, "LT": true, "UT": true, "UC": true}

// recode copies a source element, re-encoding its text (suyashkumar/dicom decoded it to UTF-8
// by the source's Specific Character Set) into the destination's character set. Sequences
// are copied item by item.
func recode(e *dicom.Element, charset string) (*dicom.Element, error) {
	c := *e
	switch e.Value.ValueType() {
	case dicom.Strings:
		vals := slices.Clone(dicom.MustGetStrings(e.Value))
		if charsetVRs[e.RawValueRepresentation] {
			for i, s := range vals {
				out, err := encodeText(s, charset)
				if err != nil {
					return nil, fmt.Errorf("%w: %v (%s): %v", ErrCharset, e.Tag, charset, err)
				}
				vals[i] = out
			}
		}
		v, err := dicom.NewValue(vals)
		if err != nil {
			return nil, err
		}
		c.Value = v
	case dicom.Sequences:
		var items [][]*dicom.Element
		for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
			var els []*dicom.Element
			for _, x := range it.GetValue().([]*dicom.Element) {
				y, err := recode(x, charset)
				if err != nil {
					return nil, err
				}
				els = append(els, y)
			}
			items = append(items, els)
		}
		v, err := dicom.NewValue(items)
		if err != nil {
			return nil, err
		}
		c.Value = v
		c.ValueLength = tag.VLUndefinedLength
	}
	return &c, nil
}

// asciiOr returns s when it is printable ASCII, else alt: Midline's own text must read the same
// in every character set it may be written in.
func asciiOr(s, alt string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return alt
		}
	}
	return s
}

func encodeText(s, charset string) (string, error) {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	switch {
	case ascii || charset == CharsetUTF8:
		return s, nil
	case charset == CharsetLatin1:
		return charmap.ISO8859_1.NewEncoder().String(s)
	default:
		return "", fmt.Errorf("non-ASCII text")
	}
}
