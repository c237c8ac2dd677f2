package contour

import (
	"encoding/json"
	"math"
)

// ContoursSchema names the contour message (DESIGN.md, MQTT; docs/contracts.md).
const ContoursSchema = "midline.contours/1"

// ContoursMessage is the contour JSON: the same content as the RT Structure Set, in patient
// millimetres, without any identifying patient attribute (only UIDs).
type ContoursMessage struct {
	Schema            string       `json:"schema"`
	JobID             string       `json:"job_id,omitempty"`
	StudyInstanceUID  string       `json:"study_instance_uid"`
	SeriesInstanceUID string       `json:"series_instance_uid"`
	FrameOfReference  string       `json:"frame_of_reference_uid"`
	RTStructSOPUID    string       `json:"rtstruct_sop_instance_uid"`
	Revision          int          `json:"revision"`
	Model             ModelRef     `json:"model"`
	Approval          string       `json:"approval"`
	ClinicalUse       bool         `json:"clinical_use"`
	ROIs              []ROIMessage `json:"rois"`
	Empty             bool         `json:"empty"`
	// MessageID is the MQTT dedupe key (docs/contracts.md, MQTT delivery).
	MessageID string `json:"message_id,omitempty"`
}

// ModelRef names the model that made a result.
type ModelRef struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	BundleSHA256 string `json:"bundle_sha256"`
	Engine       string `json:"engine"`
}

// ROIMessage is one ROI of the contour JSON.
type ROIMessage struct {
	Number    int            `json:"number"`
	Name      string         `json:"name"`
	Type      string         `json:"type"`
	Review    bool           `json:"review"`
	Color     [3]uint8       `json:"color"`
	VolumeCM3 float64        `json:"volume_cm3"`
	Slices    []SliceMessage `json:"slices"`
}

// SliceMessage holds one slice's polygons with the image they lie on.
type SliceMessage struct {
	SOPInstanceUID string           `json:"sop_instance_uid"`
	Frame          int              `json:"frame,omitempty"`
	Polygons       []PolygonMessage `json:"polygons"`
}

// PolygonMessage is a closed polygon, [x, y, z] in patient mm (LPS).
type PolygonMessage struct {
	Hole   bool         `json:"hole"`
	Points [][3]float64 `json:"points"`
}

// Message builds the contour JSON of a structure set; volumes come from the masks (cm3).
func (s *StructureSet) Message(volumesCM3 []float64, review []bool) ContoursMessage {
	h := s.Source.Header
	m := ContoursMessage{
		Schema: ContoursSchema, StudyInstanceUID: h.StudyInstanceUID, SeriesInstanceUID: h.SeriesInstanceUID,
		FrameOfReference: h.FrameOfReferenceUID, RTStructSOPUID: s.UIDs.SOPInstanceUID, Revision: max(1, s.Revision),
		Model:    ModelRef{Name: s.Prov.ModelName, Version: s.Prov.ModelVersion, BundleSHA256: s.Prov.BundleSHA256, Engine: s.Prov.Engine},
		Approval: "UNAPPROVED", ClinicalUse: s.Prov.ClinicalUse, ROIs: []ROIMessage{},
	}
	empty := true
	for i, r := range s.ROIs {
		rm := ROIMessage{Number: r.Number, Name: r.Name, Type: r.InterpretedType, Color: r.Color, Slices: []SliceMessage{}}
		if i < len(volumesCM3) {
			rm.VolumeCM3 = math.Round(volumesCM3[i]*1000) / 1000
		}
		if i < len(review) {
			rm.Review = review[i]
		}
		for _, sc := range r.Slices {
			sm := SliceMessage{SOPInstanceUID: sc.SOPInstanceUID}
			if s.multiFrame() {
				sm.Frame = sc.Frame
			}
			for _, p := range sc.Polygons {
				pm := PolygonMessage{Hole: p.Hole, Points: make([][3]float64, len(p.Points))}
				for j, q := range p.Points {
					for a := range 3 {
						pm.Points[j][a] = math.Round(q[a]*1e4) / 1e4
					}
				}
				sm.Polygons = append(sm.Polygons, pm)
				empty = false
			}
			rm.Slices = append(rm.Slices, sm)
		}
		m.ROIs = append(m.ROIs, rm)
	}
	m.Empty = empty
	return m
}

// Marshal is the wire form of the message.
func (m ContoursMessage) Marshal() ([]byte, error) { return json.Marshal(m) }

// MarshalIndent is the file form of the message (contours.json).
func (m ContoursMessage) MarshalIndent() ([]byte, error) { return json.MarshalIndent(m, "", " ") }
