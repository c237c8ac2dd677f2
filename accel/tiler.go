package accel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/midline-rt/midline/preproc"
)

// Plan is the tiled multi-scale inference a model bundle asks for (model.json): tile size,
// the scales in mm with their fusion weights, the tile overlap and the gate of fine tiles.
// docs/contracts.md ("Tiled inference") defines every rule; the Python reference is
// scripts/model/midline_model/infer.py.
type Plan struct {
	Size         int
	ScalesMM     []float64
	ScaleWeights []float64
	Overlap      float64
	RoiGate      float64
	// Context is model.json's input.context_slices: the model sees 2*Context+1 neighbouring
	// slices as channels (2.5D), the segmented slice in the middle.
	Context int
	// ContextMM is model.json's input.context_mm: the distance between those channels along the
	// slice normal, taken as the nearest whole number of slices (ContextStep); 0 means adjacent
	// slices.
	ContextMM float64
	// FlipTTA turns on flip test-time augmentation: every tile also runs mirrored left to
	// right, and the two dequantised outputs, the second mirrored back, are averaged. Not from
	// model.json: the caller chooses it (it doubles the invocations). Off by default.
	FlipTTA bool
}

// Channels is the number of input channels the plan feeds a model: 2*Context+1.
func (p Plan) Channels() int { return 2*p.Context + 1 }

// ContextStep is the number of slices between a 2.5D tile's channels for slices sliceMM apart
// (docs/contracts.md): 1 when ContextMM is 0; else the whole number nearest ContextMM/sliceMM, a
// tie (within a thousandth of a slice) going to the smaller, and at least 1.
func (p Plan) ContextStep(sliceMM float64) int {
	if !(p.ContextMM > 0) || !(sliceMM > 0) {
		return 1
	}
	return max(1, int(math.Ceil(p.ContextMM/sliceMM-0.5-1e-3)))
}

// Validate checks a plan from a bundle before anything runs with it.
func (p Plan) Validate() error {
	switch {
	case p.Size < 8 || p.Size > 1024:
		return fmt.Errorf("accel: tile size %d out of range", p.Size)
	case len(p.ScalesMM) == 0 || len(p.ScalesMM) != len(p.ScaleWeights):
		return fmt.Errorf("accel: %d scales with %d weights", len(p.ScalesMM), len(p.ScaleWeights))
	case !(p.Overlap >= 0 && p.Overlap < 1):
		return fmt.Errorf("accel: tile overlap %v not in [0, 1)", p.Overlap)
	case !(p.RoiGate >= 0 && p.RoiGate <= 1):
		return fmt.Errorf("accel: roi_gate %v not in [0, 1]", p.RoiGate)
	case p.Context < 0 || p.Context > MaxContextSlices:
		return fmt.Errorf("accel: %d context slices, at most %d", p.Context, MaxContextSlices)
	case !(p.ContextMM >= 0 && p.ContextMM <= MaxContextMM):
		return fmt.Errorf("accel: context %v mm not in [0, %v]", p.ContextMM, MaxContextMM)
	}
	var sum float64
	for i, s := range p.ScalesMM {
		if !(s > 0 && s < 20) || !(p.ScaleWeights[i] >= 0) {
			return fmt.Errorf("accel: scale %v mm with weight %v", s, p.ScaleWeights[i])
		}
		sum += p.ScaleWeights[i]
	}
	if !(sum > 0) {
		return errors.New("accel: scale weights sum to zero")
	}
	return nil
}

// MaxContextSlices bounds input.context_slices (on each side).
const MaxContextSlices = 8

// MaxContextMM bounds input.context_mm.
const MaxContextMM = 20.0

// Stride is the distance between tile starts.
func (p Plan) Stride() int { return max(1, int(math.Round(float64(p.Size)*(1-p.Overlap)))) }

// TileOrigins are the tile starts along an axis of n pixels: every stride from 0, the last tile
// aligned to the end; an axis shorter than a tile gets one tile at 0 (padded).
func TileOrigins(n, size int, overlap float64) []int {
	if n <= size {
		return []int{0}
	}
	stride := max(1, int(math.Round(float64(size)*(1-overlap))))
	var starts []int
	for s := 0; s <= n-size; s += stride {
		starts = append(starts, s)
	}
	if starts[len(starts)-1] != n-size {
		starts = append(starts, n-size)
	}
	return starts
}

// gaussianWeight is the blending weight of a tile: sigma = size/8 around its centre.
func gaussianWeight(size int) []float32 {
	c := float64(size-1) / 2
	sigma := float64(size) / 8
	g := make([]float64, size)
	for i := range g {
		d := float64(i) - c
		g[i] = math.Exp(-d * d / (2 * sigma * sigma))
	}
	w := make([]float32, size*size)
	for y := range size {
		for x := range size {
			w[y*size+x] = float32(g[y] * g[x])
		}
	}
	return w
}

// scaleOrder lists scale indices coarsest first.
func (p Plan) scaleOrder() []int {
	idx := make([]int, len(p.ScalesMM))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case p.ScalesMM[a] > p.ScalesMM[b]:
			return -1
		case p.ScalesMM[a] < p.ScalesMM[b]:
			return 1
		}
		return 0
	})
	return idx
}

// Image is one slice of values, row-major: preproc's Plane, so that preproc's resamplers serve
// the runner directly.
type Image = preproc.Plane

func newImage(rows, cols int) Image {
	return Image{Rows: rows, Cols: cols, Pix: make([]float32, rows*cols)}
}

// Resampler moves a slice between its native grid and a model scale, as docs/contracts.md
// defines (preproc implements it; tests use simple ones).
type Resampler interface {
	// ToScale resamples src, whose pixel spacing is spacing (row, column) in mm, to scale mm.
	ToScale(src Image, spacing [2]float64, scale float64) Image
	// ToNative maps an image at some scale back onto a rows x cols native grid.
	ToNative(src Image, rows, cols int) Image
}

// TileModel is what the runner needs of a model: int8 tiles in, int8 probabilities out.
type TileModel interface {
	Input() TensorInfo
	Output() TensorInfo
	Run(ctx context.Context, in, out []int8) error
}

// Slice is one normalised slice to segment, with its in-plane spacing and the value that fills
// tiles beyond the image's edge (the normalised clip floor). For a model with context slices,
// Context holds the 2*Context+1 normalised slices a tile's channels show (ContextSlice), Image
// being the middle one; it is nil otherwise. ContextIndex, when set, is the series index of each
// Context image: the runner then resamples each series slice once per scale, not once per
// channel that shows it (a series walked upwards shows a slice as a neighbour below, the
// centre and a neighbour above).
type Slice struct {
	Image        Image
	Spacing      [2]float64
	Fill         float32
	Context      []Image
	ContextIndex []int
}

// Stats counts the tiles a run used.
type Stats struct {
	TilesRun, TilesSkipped int
}
