package contour

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"slices"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/midline-rt/midline/preproc"
)

// PreviewROI is one ROI to draw: its colour and its traced slices.
type PreviewROI struct {
	Name   string
	Color  [3]uint8
	Slices []SliceContours
}

// PreviewInput is what a preview shows.
type PreviewInput struct {
	Volume *preproc.Volume
	ROIs   []PreviewROI
	Title  string // model name and version
	Note   string // the draft wording (watermark)
}

// previewPanel is the display height of one slice, in screen pixels.
const previewPanel = 320

// WritePreview draws the three tumour slices nearest the tumour's centre (or the middle slice
// when there is none), window-levelled, in radiological display (patient left on the right,
// anterior up) for near-axial series, with the contours, a 10 mm scale bar, the model and the
// draft watermark, as a PNG.
func WritePreview(w io.Writer, in PreviewInput) error {
	v := in.Volume
	if v == nil || v.Slices() == 0 {
		return fmt.Errorf("contour: preview without a volume")
	}
	ks := centralSlices(in.ROIs, v.Slices())
	o, err := preproc.Orient(v.Geometry, preproc.DefaultMaxTiltDeg)
	oriented := err == nil
	rows, cols, sp := v.Rows, v.Cols, v.PixelSpacing
	if oriented {
		rows, cols, sp = o.Canonical.Rows, o.Canonical.Cols, o.Canonical.PixelSpacing
	}
	// Screen scale: previewPanel pixels for the image height, columns by their own spacing.
	mmPerPx := float64(rows) * sp[0] / previewPanel
	pw := int(math.Round(float64(cols) * sp[1] / mmPerPx))
	const header = 18 // one text line
	width := len(ks)*pw + (len(ks)-1)*4
	// The title above and the draft note below are wrapped to the image's width, never cut: the
	// note is the draft warning ("NOT REVIEWED, NOT FOR CLINICAL USE").
	perLine := max(1, (width-8)/glyphWidth)
	title, note := wrapWords(in.Title, perLine), wrapWords(in.Note, perLine)
	top := header * max(1, len(title))
	img := image.NewRGBA(image.Rect(0, 0, width, top+previewPanel+header*max(1, len(note))))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.Black}, image.Point{}, draw.Src)
	canon := make([]float32, rows*cols)
	for i, k := range ks {
		x0 := i * (pw + 4)
		src := v.Slice(k)
		if oriented {
			o.ToCanonical(canon, src)
			src = canon
		}
		lo, hi := window(src)
		for y := range previewPanel {
			r := min(int((float64(y)+0.5)*mmPerPx/sp[0]), rows-1)
			for x := range pw {
				c := min(int((float64(x)+0.5)*mmPerPx/sp[1]), cols-1)
				g := uint8(math.Round(255 * math.Min(1, math.Max(0, (float64(src[r*cols+c])-lo)/(hi-lo)))))
				img.SetRGBA(x0+x, top+y, color.RGBA{g, g, g, 255})
			}
		}
		toScreen := func(p Point) (float64, float64) {
			r, c := p.Row, p.Col
			if oriented {
				r, c = o.CanonicalPoint(r, c)
			}
			return float64(x0) + (c+0.5)*sp[1]/mmPerPx, float64(top) + (r+0.5)*sp[0]/mmPerPx
		}
		for _, roi := range in.ROIs {
			col := color.RGBA{roi.Color[0], roi.Color[1], roi.Color[2], 255}
			for _, sc := range roi.Slices {
				if sc.Slice != k {
					continue
				}
				for _, l := range sc.Loops {
					for j, p := range l.Points {
						ax, ay := toScreen(p)
						bx, by := toScreen(l.Points[(j+1)%len(l.Points)])
						line(img, ax, ay, bx, by, col)
					}
				}
			}
		}
		label(img, x0+4, top+previewPanel-6, fmt.Sprintf("slice %d/%d", k+1, v.Slices()), color.RGBA{200, 200, 200, 255})
		if oriented { // radiological display: the patient's right on the left, anterior up
			grey := color.RGBA{160, 160, 160, 255}
			label(img, x0+3, top+previewPanel/2, "R", grey)
			label(img, x0+pw-10, top+previewPanel/2, "L", grey)
			label(img, x0+pw/2-3, top+13, "A", grey)
		}
		// Scale bar: 10 mm, bottom right of the panel.
		bar := 10 / mmPerPx
		bx := float64(x0+pw) - 8 - bar
		by := float64(top+previewPanel) - 10
		for d := 0.0; d < 2; d++ {
			line(img, bx, by+d, bx+bar, by+d, color.RGBA{255, 255, 255, 255})
		}
		label(img, int(bx+bar)-35, int(by)-4, "10 mm", color.RGBA{255, 255, 255, 255}) // 5 glyphs of 7 px, right-aligned
	}
	for i, l := range title {
		label(img, 4, 13+i*header, l, color.RGBA{255, 255, 255, 255})
	}
	for i, l := range note {
		label(img, 4, top+previewPanel+header-5+i*header, l, color.RGBA{255, 200, 0, 255})
	}
	return png.Encode(w, img)
}

// glyphWidth is the width of the preview font's characters (basicfont 7x13).
const glyphWidth = 7

// wrapWords breaks s into lines of at most n characters at spaces; a word longer than n is cut
// into pieces of n. Every character of s but the breaking spaces is kept, in order.
func wrapWords(s string, n int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		for len(w) > n {
			if cur != "" {
				lines, cur = append(lines, cur), ""
			}
			lines, w = append(lines, w[:n]), w[n:]
		}
		switch {
		case cur == "":
			cur = w
		case len(cur)+1+len(w) <= n:
			cur += " " + w
		default:
			lines, cur = append(lines, cur), w
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// centralSlices picks the three slices holding contours nearest the contours' mean slice.
func centralSlices(rois []PreviewROI, n int) []int {
	var ks []int
	for _, r := range rois {
		for _, sc := range r.Slices {
			if !slices.Contains(ks, sc.Slice) {
				ks = append(ks, sc.Slice)
			}
		}
	}
	if len(ks) == 0 {
		return []int{n / 2}
	}
	mean := 0.0
	for _, k := range ks {
		mean += float64(k)
	}
	mean /= float64(len(ks))
	slices.SortStableFunc(ks, func(a, b int) int {
		da, db := math.Abs(float64(a)-mean), math.Abs(float64(b)-mean)
		switch {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return a - b
	})
	ks = ks[:min(3, len(ks))]
	slices.Sort(ks)
	return ks
}

// window is the 1st and 99.5th percentiles of a slice, a display window robust to hot pixels.
func window(px []float32) (float64, float64) {
	s := slices.Clone(px)
	slices.Sort(s)
	lo, hi := float64(s[len(s)/100]), float64(s[min(len(s)-1, len(s)*995/1000)])
	if !(hi > lo) {
		hi = lo + 1
	}
	return lo, hi
}

func line(img *image.RGBA, ax, ay, bx, by float64, c color.RGBA) {
	n := int(math.Ceil(math.Max(math.Abs(bx-ax), math.Abs(by-ay)))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		img.SetRGBA(int(ax+t*(bx-ax)), int(ay+t*(by-ay)), c)
	}
}

func label(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
