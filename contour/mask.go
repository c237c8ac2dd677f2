package contour

import (
	"fmt"
	"math"

	"github.com/midline-rt/midline/preproc"
)

// Mask is a binary volume on a series' grid, slice-major like preproc.Volume:
// In[(k*Rows+r)*Cols+c].
type Mask struct {
	Rows, Cols, Slices int
	In                 []bool
}

func newMask(rows, cols, slices int) *Mask {
	return &Mask{Rows: rows, Cols: cols, Slices: slices, In: make([]bool, rows*cols*slices)}
}

// Count is the number of voxels set.
func (m *Mask) Count() int {
	n := 0
	for _, b := range m.In {
		if b {
			n++
		}
	}
	return n
}

// Prob is a probability volume on a series' grid, slice-major (accel.Probability is one).
type Prob interface {
	// At is the probability of voxel i = (k*Rows+r)*Cols+c.
	At(i int) float32
	// Slice writes slice k's Rows*Cols probabilities into dst.
	Slice(k int, dst []float32)
}

// Float32s is a probability volume held as plain float32 values (tests, tools).
type Float32s []float32

func (f Float32s) At(i int) float32 { return f[i] }

func (f Float32s) Slice(k int, dst []float32) { copy(dst, f[k*len(dst):(k+1)*len(dst)]) }

// Params are the post-processing settings; Threshold and MinComponentMM3 come from the model's
// bundle (model.json), MidlineMM from the firmware.
type Params struct {
	Threshold       float64
	MinComponentMM3 float64
	// MidlineMM: a component none of whose voxels lies within this distance of the head's
	// mid-sagittal plane goes to the review ROI (DMG sits in the pons or a thalamus; a thalamic
	// lesion's medial edge lies within about 10 mm of the plane). 0 means DefaultMidlineMM.
	MidlineMM float64
}

// DefaultMidlineMM is generous: a lesion is only set aside for review when it plainly lies in a
// hemisphere.
const DefaultMidlineMM = 20

// Component is one kept 3D connected component.
type Component struct {
	Voxels int
	MM3    float64
	// MidlineDistMM is the distance of its voxel nearest to the mid-sagittal plane.
	MidlineDistMM float64
	Review        bool // away from the midline: goes to the review ROI
}

// Segmentation is the post-processed result: the GTV (components on the midline) and the
// components set aside for review, each with holes filled slice by slice.
type Segmentation struct {
	GTV, Review *Mask
	Components  []Component
	Dropped     int // components below MinComponentMM3
	MidlineX    float64
}

// Postprocess thresholds p (on g's grid), labels 3D face-connected components, keeps every one of
// at least MinComponentMM3 (voxel volume = row spacing x column spacing x slice spacing), sorts
// the kept ones by distance from the mid-sagittal plane at patient x = midlineX, and fills holes
// per slice (docs/contracts.md, Tiled inference, Post-processing).
func Postprocess(g *preproc.Geometry, p Prob, midlineX float64, prm Params) (*Segmentation, error) {
	n := g.Rows * g.Cols * g.Slices()
	if n == 0 {
		return nil, fmt.Errorf("contour: empty %dx%dx%d grid", g.Rows, g.Cols, g.Slices())
	}
	if prm.MidlineMM == 0 {
		prm.MidlineMM = DefaultMidlineMM
	}
	thr := float32(prm.Threshold)
	labels := make([]int32, n)
	var sizes []int
	var minDist []float64
	var stack []int
	plane := g.Rows * g.Cols
	for start := range n {
		if labels[start] != 0 || !(p.At(start) >= thr) {
			continue
		}
		id := int32(len(sizes) + 1)
		labels[start] = id
		size, best := 0, math.Inf(1)
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			k, r, c := i/plane, (i%plane)/g.Cols, i%g.Cols
			best = min(best, math.Abs(g.Patient(k, float64(r), float64(c))[0]-midlineX))
			visit := func(j int) {
				if labels[j] == 0 && p.At(j) >= thr {
					labels[j] = id
					stack = append(stack, j)
				}
			}
			inPlane(i, r, c, g.Rows, g.Cols, visit)
			if k > 0 {
				visit(i - plane)
			}
			if k < g.Slices()-1 {
				visit(i + plane)
			}
		}
		sizes = append(sizes, size)
		minDist = append(minDist, best)
	}
	voxel := g.PixelSpacing[0] * g.PixelSpacing[1] * g.SliceSpacing
	s := &Segmentation{GTV: newMask(g.Rows, g.Cols, g.Slices()), Review: newMask(g.Rows, g.Cols, g.Slices()), MidlineX: midlineX}
	// dest[id] is where a component goes: 0 dropped, 1 GTV, 2 review.
	dest := make([]uint8, len(sizes)+1)
	for i, size := range sizes {
		mm3 := float64(size) * voxel
		if mm3 < prm.MinComponentMM3 {
			s.Dropped++
			continue
		}
		c := Component{Voxels: size, MM3: mm3, MidlineDistMM: minDist[i], Review: minDist[i] > prm.MidlineMM}
		s.Components = append(s.Components, c)
		dest[i+1] = 1
		if c.Review {
			dest[i+1] = 2
		}
	}
	for i, l := range labels {
		switch dest[l] {
		case 1:
			s.GTV.In[i] = true
		case 2:
			s.Review.In[i] = true
		}
	}
	s.GTV.fillHoles()
	s.Review.fillHoles()
	return s, nil
}

// fillHoles sets, slice by slice, every background pixel not connected to the slice's border
// through background pixels sharing an edge (scipy's binary_fill_holes with its default
// structure, which the toolchain uses).
func (m *Mask) fillHoles() {
	plane := m.Rows * m.Cols
	outside := make([]bool, plane)
	var stack []int
	for k := range m.Slices {
		in := m.In[k*plane : (k+1)*plane]
		clear(outside)
		push := func(i int) {
			if !in[i] && !outside[i] {
				outside[i] = true
				stack = append(stack, i)
			}
		}
		for c := range m.Cols {
			push(c)
			push((m.Rows-1)*m.Cols + c)
		}
		for r := range m.Rows {
			push(r * m.Cols)
			push(r*m.Cols + m.Cols - 1)
		}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			inPlane(i, i/m.Cols, i%m.Cols, m.Rows, m.Cols, push)
		}
		for i := range in {
			if !outside[i] {
				in[i] = true
			}
		}
	}
}

// inPlane calls visit with the in-plane neighbours sharing an edge with pixel i = (r, c) of a
// rows x cols slice.
func inPlane(i, r, c, rows, cols int, visit func(int)) {
	if c > 0 {
		visit(i - 1)
	}
	if c < cols-1 {
		visit(i + 1)
	}
	if r > 0 {
		visit(i - cols)
	}
	if r < rows-1 {
		visit(i + cols)
	}
}

// MidlineX estimates the patient x (left-right) of the head's mid-sagittal plane: the mean x of
// the voxels above the series' Otsu threshold (the head, as the series' normalisation found it),
// which tolerates an off-centre table position. It assumes the head is not turned by more than a
// few degrees.
func MidlineX(v *preproc.Volume, otsu float64) float64 {
	t := float32(otsu)
	var sum float64
	n := 0
	plane := v.Rows * v.Cols
	for k := range v.Slices() {
		// x is affine in (r, c) on a slice: accumulate index sums, map once.
		var sr, sc float64
		m := 0
		for i, x := range v.Pixels[k*plane : (k+1)*plane] {
			if x > t {
				sr += float64(i / v.Cols)
				sc += float64(i % v.Cols)
				m++
			}
		}
		if m > 0 {
			sum += v.Patient(k, sr/float64(m), sc/float64(m))[0] * float64(m)
			n += m
		}
	}
	if n == 0 {
		return v.Patient(v.Slices()/2, float64(v.Rows-1)/2, float64(v.Cols-1)/2)[0]
	}
	return sum / float64(n)
}
