package preproc

import (
	"fmt"
	"math"

	"github.com/suyashkumar/dicom"
)

// Vec3 is a point or direction in patient coordinates (DICOM LPS, millimetres).
type Vec3 [3]float64

func (a Vec3) add(b Vec3) Vec3      { return Vec3{a[0] + b[0], a[1] + b[1], a[2] + b[2]} }
func (a Vec3) sub(b Vec3) Vec3      { return Vec3{a[0] - b[0], a[1] - b[1], a[2] - b[2]} }
func (a Vec3) scale(s float64) Vec3 { return Vec3{a[0] * s, a[1] * s, a[2] * s} }
func (a Vec3) dot(b Vec3) float64   { return a[0]*b[0] + a[1]*b[1] + a[2]*b[2] }
func (a Vec3) norm() float64        { return math.Sqrt(a.dot(a)) }
func (a Vec3) cross(b Vec3) Vec3 {
	return Vec3{a[1]*b[2] - a[2]*b[1], a[2]*b[0] - a[0]*b[2], a[0]*b[1] - a[1]*b[0]}
}
func (a Vec3) unit() Vec3 { return a.scale(1 / a.norm()) }
func (a Vec3) near(b Vec3, tol float64) bool {
	return math.Abs(a[0]-b[0]) <= tol && math.Abs(a[1]-b[1]) <= tol && math.Abs(a[2]-b[2]) <= tol
}

// Geometry is the exact placement of a stack of slices in patient space. Pixel (r, c) of slice
// k lies at Positions[k] + c*PixelSpacing[1]*RowCosine + r*PixelSpacing[0]*ColumnCosine, as in
// DICOM (PS3.3 C.7.6.2.1.1): RowCosine is ImageOrientationPatient's first triplet, the direction
// in which the column index grows along a row.
type Geometry struct {
	Rows, Cols   int
	RowCosine    Vec3       // ImageOrientationPatient[0:3]
	ColumnCosine Vec3       // ImageOrientationPatient[3:6]
	PixelSpacing [2]float64 // row spacing (between rows) first, column spacing second, mm
	Normal       Vec3       // RowCosine x ColumnCosine; slices are sorted along it
	SliceSpacing float64    // mean distance between neighbouring slices along Normal, mm
	Positions    []Vec3     // ImagePositionPatient of every slice, in slice order
}

// Slices returns the number of slices.
func (g *Geometry) Slices() int { return len(g.Positions) }

// Patient maps (slice k, row r, column c) to patient coordinates, using slice k's own position.
func (g *Geometry) Patient(k int, r, c float64) Vec3 {
	p := g.Positions[k]
	p = p.add(g.RowCosine.scale(c * g.PixelSpacing[1]))
	return p.add(g.ColumnCosine.scale(r * g.PixelSpacing[0]))
}

// Index maps a patient point to fractional (slice, row, column) indices. The slice index is
// interpolated between the two slices whose planes enclose the point, so non-uniform stacks
// within the loader's tolerance still map exactly on every slice plane.
func (g *Geometry) Index(p Vec3) (k, r, c float64) {
	n := len(g.Positions)
	d := p.dot(g.Normal)
	k = 0
	switch {
	case n == 1:
	default:
		lo := 0
		for lo < n-2 && g.Positions[lo+1].dot(g.Normal) <= d {
			lo++
		}
		d0, d1 := g.Positions[lo].dot(g.Normal), g.Positions[lo+1].dot(g.Normal)
		k = float64(lo) + (d-d0)/(d1-d0)
	}
	k0 := min(max(int(math.Floor(k)), 0), n-1)
	// Solve q = a*RowCosine + b*ColumnCosine in the least-squares sense, so that Index inverts
	// Patient exactly even where DS rounding left the cosines slightly off orthonormal.
	q := p.sub(g.Positions[k0])
	rr, rc, cc := g.RowCosine.dot(g.RowCosine), g.RowCosine.dot(g.ColumnCosine), g.ColumnCosine.dot(g.ColumnCosine)
	qr, qc := q.dot(g.RowCosine), q.dot(g.ColumnCosine)
	det := rr*cc - rc*rc
	a, b := (qr*cc-qc*rc)/det, (qc*rr-qr*rc)/det
	return k, b / g.PixelSpacing[0], a / g.PixelSpacing[1]
}

// SliceIndex returns the slice whose plane passes within tol mm of the point p, or -1.
func (g *Geometry) SliceIndex(p Vec3, tol float64) int {
	for k, o := range g.Positions {
		if math.Abs(p.sub(o).dot(g.Normal)) <= tol {
			return k
		}
	}
	return -1
}

// Header holds the facts about a series that classification and the result writers need.
type Header struct {
	SOPClassUID         string
	StudyInstanceUID    string
	SeriesInstanceUID   string
	FrameOfReferenceUID string
	Modality            string
	Manufacturer        string
	SeriesDescription   string
	ProtocolName        string
	SeriesNumber        string
	ImageType           []string
	TransferSyntaxUID   string // of the first instance
	// PatientStudy holds the first instance's Patient, General Study and Patient Study module
	// elements as parsed, for the RT Structure Set writer to copy. Never log them.
	PatientStudy []*dicom.Element
	// Acquisition holds the MR physics and names that Classify reads.
	Acquisition Acquisition
}

// Volume is a series as real-valued voxels on its exact geometry.
type Volume struct {
	Geometry
	// Pixels holds RescaleSlope x stored + RescaleIntercept in float32 (as the Python reference
	// computes it), slice-major: Pixels[(k*Rows+r)*Cols+c].
	Pixels []float32
	// SOPInstanceUIDs holds, per slice, the instance the slice came from; Frames the 1-based
	// frame number within it (1 for single-frame instances).
	SOPInstanceUIDs []string
	Frames          []int
	Header          Header
}

// Slice returns slice k's pixels (a view, not a copy).
func (v *Volume) Slice(k int) []float32 {
	n := v.Rows * v.Cols
	return v.Pixels[k*n : (k+1)*n]
}

func (g *Geometry) String() string {
	return fmt.Sprintf("%dx%dx%d, spacing %gx%gx%g mm", g.Rows, g.Cols, len(g.Positions),
		g.PixelSpacing[0], g.PixelSpacing[1], g.SliceSpacing)
}
