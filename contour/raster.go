package contour

import (
	"fmt"

	"github.com/midline-rt/midline/preproc"
)

// Rasterize draws contours back onto a series' grid: a pixel is inside when its centre lies
// inside an odd number of the slice's polygons (holes and CLOSEDPLANAR_XOR alike). Points are
// mapped from patient millimetres through the slice's own geometry, so a writer that swapped
// row and column spacing, or placed a contour on the wrong slice, shows up here.
func Rasterize(g *preproc.Geometry, slices []SliceContours) (*Mask, error) {
	m := newMask(g.Rows, g.Cols, g.Slices())
	plane := g.Rows * g.Cols
	for _, sc := range slices {
		if sc.Slice < 0 || sc.Slice >= g.Slices() {
			return nil, fmt.Errorf("contour: rasterize: slice %d of %d", sc.Slice, g.Slices())
		}
		var polys [][]Point
		for _, p := range sc.Polygons {
			pts := make([]Point, len(p.Points))
			for i, q := range p.Points {
				k, r, c := g.Index(q)
				if d := k - float64(sc.Slice); d > 1e-3 || d < -1e-3 {
					return nil, fmt.Errorf("contour: rasterize: a point of slice %d lies at slice %.4f", sc.Slice, k)
				}
				pts[i] = Point{Row: r, Col: c}
			}
			polys = append(polys, pts)
		}
		in := m.In[sc.Slice*plane : (sc.Slice+1)*plane]
		for _, poly := range polys {
			r0, r1, c0, c1 := bounds(poly, g.Rows, g.Cols)
			for r := r0; r <= r1; r++ {
				for c := c0; c <= c1; c++ {
					if inside(poly, Point{Row: float64(r), Col: float64(c)}) {
						in[r*g.Cols+c] = !in[r*g.Cols+c]
					}
				}
			}
		}
	}
	return m, nil
}

func bounds(poly []Point, rows, cols int) (r0, r1, c0, c1 int) {
	lr, hr, lc, hc := poly[0].Row, poly[0].Row, poly[0].Col, poly[0].Col
	for _, p := range poly {
		lr, hr, lc, hc = min(lr, p.Row), max(hr, p.Row), min(lc, p.Col), max(hc, p.Col)
	}
	return max(0, int(lr)), min(rows-1, int(hr)+1), max(0, int(lc)), min(cols-1, int(hc)+1)
}
