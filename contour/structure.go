package contour

import (
	"fmt"

	"github.com/midline-rt/midline/preproc"
)

// HoleMode says how a destination wants holes written (destinations[].profile.hole_mode).
type HoleMode string

const (
	// HolesSeparate writes every hole as its own CLOSED_PLANAR contour on the slice; the
	// importer (Eclipse, RayStation) treats nested contours as holes.
	HolesSeparate HoleMode = "separate"
	// HolesXOR writes every contour of a slice as CLOSEDPLANAR_XOR (PS3.3 C.8.8.6.1).
	HolesXOR HoleMode = "xor"
	// HolesKeyhole joins each hole to its outer boundary by a zero-width cut, so a slice holds
	// only outer contours (for importers that ignore nesting).
	HolesKeyhole HoleMode = "keyhole"
)

// Profile is what one destination's planning system accepts (destinations[].profile in the
// configuration; docs/contracts.md gives each key's meaning).
type Profile struct {
	HoleMode HoleMode `yaml:"hole_mode"`
	// MaxPoints caps the points of one contour; 0 is the writer's limit, DefaultMaxPoints.
	MaxPoints int `yaml:"max_points"`
	// TransverseOnly: the importer takes contours on transverse planes only; a series whose
	// slices are not transverse yields an event for this destination, not a file.
	TransverseOnly bool `yaml:"transverse_only"`
	// Charset is the RTSTRUCT's character set: CharsetSource (empty) or a named one.
	Charset string `yaml:"charset"`
	// ROINames maps a sequence (T2, FLAIR, T1C) to the ROI name written (at most 16 ASCII
	// characters); absent: the model's roi.name.
	ROINames map[string]string `yaml:"roi_names"`
	// SendEmpty asks for a structure set with an empty ROI when no lesion is found (the
	// default sends none: an event and a line on the status page say so).
	SendEmpty bool `yaml:"send_empty"`
}

// TraceOptions shape the contours.
type TraceOptions struct {
	// ToleranceMM is the Douglas-Peucker tolerance; at most 0.25 mm (DefaultToleranceMM).
	ToleranceMM float64
	// MaxPoints caps the points of one contour (0: DefaultMaxPoints).
	MaxPoints int
	Holes     HoleMode
}

const (
	DefaultToleranceMM = 0.25
	// DefaultMaxPoints keeps one ContourData within the 64 KiB explicit-VR length of DS with
	// room: 3 values of at most 16 characters and their separators per point.
	DefaultMaxPoints = 1200
)

func (o TraceOptions) withDefaults() (TraceOptions, error) {
	if o.ToleranceMM == 0 {
		o.ToleranceMM = DefaultToleranceMM
	}
	if o.ToleranceMM < 0 || o.ToleranceMM > DefaultToleranceMM {
		return o, fmt.Errorf("contour: simplification tolerance %v mm outside [0, %v]", o.ToleranceMM, DefaultToleranceMM)
	}
	if o.MaxPoints == 0 {
		o.MaxPoints = DefaultMaxPoints
	}
	if o.MaxPoints < 3 || o.MaxPoints > DefaultMaxPoints {
		return o, fmt.Errorf("contour: max points %d outside [3, %d]", o.MaxPoints, DefaultMaxPoints)
	}
	if o.Holes == "" {
		o.Holes = HolesSeparate
	}
	switch o.Holes {
	case HolesSeparate, HolesXOR, HolesKeyhole:
	default:
		return o, fmt.Errorf("contour: hole mode %q (want separate, xor or keyhole)", o.Holes)
	}
	return o, nil
}

// Polygon is one closed contour in patient millimetres on one slice.
type Polygon struct {
	Points []preproc.Vec3
	Hole   bool // a hole (in HolesSeparate and HolesXOR; never after keyholing)
}

// SliceContours are the polygons of one ROI on one slice, with the image they lie on.
type SliceContours struct {
	Slice          int // index in the volume's slice order
	SOPInstanceUID string
	Frame          int // 1-based frame of a multi-frame image; 1 otherwise
	Loops          []Loop
	Polygons       []Polygon
}

// Trace contours the mask m slice by slice: marching squares on the probability (forced to
// the mask where post-processing changed it), simplification, then patient coordinates from each
// slice's own position, orientation and pixel spacing.
func Trace(v *preproc.Volume, p Prob, m *Mask, thr float64, o TraceOptions) ([]SliceContours, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &v.Geometry
	if m.Rows != g.Rows || m.Cols != g.Cols || m.Slices != g.Slices() {
		return nil, fmt.Errorf("contour: mask %dx%dx%d on a %dx%dx%d series", m.Rows, m.Cols, m.Slices, g.Rows, g.Cols, g.Slices())
	}
	if len(v.SOPInstanceUIDs) != g.Slices() {
		return nil, fmt.Errorf("contour: %d instance UIDs for %d slices", len(v.SOPInstanceUIDs), g.Slices())
	}
	plane := g.Rows * g.Cols
	ps := make([]float32, plane)
	var out []SliceContours
	for k := range g.Slices() {
		in := m.In[k*plane : (k+1)*plane]
		if !anyTrue(in) {
			continue
		}
		p.Slice(k, ps)
		loops := March(field(ps, in, float32(thr)), g.Rows, g.Cols, float32(thr))
		loops = simplifyAll(loops, g.PixelSpacing, o)
		if o.Holes == HolesKeyhole {
			loops = keyhole(loops)
		}
		sc := SliceContours{Slice: k, SOPInstanceUID: v.SOPInstanceUIDs[k], Frame: 1, Loops: loops}
		if len(v.Frames) == g.Slices() {
			sc.Frame = v.Frames[k]
		}
		for _, l := range loops {
			poly := Polygon{Hole: l.Hole, Points: make([]preproc.Vec3, len(l.Points))}
			for i, q := range l.Points {
				poly.Points[i] = g.Patient(k, q.Row, q.Col)
			}
			sc.Polygons = append(sc.Polygons, poly)
		}
		out = append(out, sc)
	}
	return out, nil
}

func anyTrue(b []bool) bool {
	for _, x := range b {
		if x {
			return true
		}
	}
	return false
}

// simplifyAll simplifies each loop, then keeps the unsimplified loops of a slice if two
// simplified loops would cross each other.
func simplifyAll(loops []Loop, sp [2]float64, o TraceOptions) []Loop {
	out := make([]Loop, len(loops))
	for i, l := range loops {
		pts, _ := Simplify(l.Points, sp, o.ToleranceMM, o.MaxPoints)
		out[i] = Loop{Points: pts, Hole: l.Hole}
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if loopsCross(out[i].Points, out[j].Points) {
				return loops
			}
		}
	}
	return out
}

func loopsCross(a, b []Point) bool {
	for i := range a {
		p, q := a[i], a[(i+1)%len(a)]
		for j := range b {
			if segmentsMeet(p, q, b[j], b[(j+1)%len(b)]) {
				return true
			}
		}
	}
	return false
}

// keyhole joins each hole to the smallest outer loop around it through its closest pair of
// points, walking out along the cut, round the hole, and back along the cut.
func keyhole(loops []Loop) []Loop {
	var outers, holes []Loop
	for _, l := range loops {
		if l.Hole {
			holes = append(holes, l)
		} else {
			outers = append(outers, l)
		}
	}
	for _, h := range holes {
		best, area := -1, 0.0
		for i, o := range outers {
			if inside(o.Points, h.Points[0]) {
				if a := SignedArea(o.Points); best < 0 || a < area {
					best, area = i, a
				}
			}
		}
		if best < 0 {
			continue
		}
		o := outers[best].Points
		bi, bj, bd := 0, 0, -1.0
		for i, p := range o {
			for j, q := range h.Points {
				d := (p.Row-q.Row)*(p.Row-q.Row) + (p.Col-q.Col)*(p.Col-q.Col)
				if bd < 0 || d < bd {
					bi, bj, bd = i, j, d
				}
			}
		}
		joined := append([]Point(nil), o[:bi+1]...)
		for k := range h.Points {
			joined = append(joined, h.Points[(bj+k)%len(h.Points)])
		}
		joined = append(joined, h.Points[bj], o[bi])
		joined = append(joined, o[bi+1:]...)
		outers[best].Points = joined
	}
	return outers
}
