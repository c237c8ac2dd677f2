package contour

import "slices"

// Point is a position on a slice in fractional pixel indices: Row down the rows, Col along a row.
type Point struct{ Row, Col float64 }

// Loop is one closed boundary on a slice, its last point joined to its first. Outer boundaries
// have a positive SignedArea and holes a negative one.
type Loop struct {
	Points []Point
	Hole   bool
}

// field is the slice the contours are traced on: the probability where it agrees with the
// post-processed mask, and values forced to the mask's side of the threshold where it does not
// (a filled hole, a dropped component), so the traced boundary is exactly the mask's, placed
// at sub-pixel precision wherever the boundary is a true threshold crossing.
func field(p []float32, in []bool, thr float32) []float32 {
	f := make([]float32, len(p))
	for i, v := range p {
		switch {
		case in[i] && !(v >= thr):
			f[i] = 1
		case !in[i] && v >= thr:
			f[i] = 0
		default:
			f[i] = v
		}
	}
	return f
}

// March traces the iso-line at thr of a rows x cols slice by marching squares. Values beyond the
// slice count as 0, so every loop closes, also for a lesion touching the image edge. A cell
// whose two diagonal corners are inside (a saddle) is joined when the mean of its four corners
// is inside. Crossings are placed by linear interpolation, kept at least 1e-3 pixel from a
// corner so that loops never share a point.
func March(f []float32, rows, cols int, thr float32) []Loop {
	// Padded grid: pr = rows+2, pc = cols+2, padded (i, j) is original (i-1, j-1).
	pr, pc := rows+2, cols+2
	val := func(i, j int) float32 {
		if i < 1 || j < 1 || i > rows || j > cols {
			return 0
		}
		return f[(i-1)*cols+(j-1)]
	}
	// Edge ids: horizontal edge from (i, j) to (i, j+1) is 2*(i*pc+j); vertical edge from (i, j)
	// to (i+1, j) is 2*(i*pc+j)+1.
	h := func(i, j int) int { return 2 * (i*pc + j) }
	v := func(i, j int) int { return 2*(i*pc+j) + 1 }
	// next[e] holds the (up to two) neighbours of edge point e along the iso-line.
	type link struct{ a, b int32 }
	links := map[int]link{}
	connect := func(e1, e2 int) {
		add := func(x, y int) {
			l, ok := links[x]
			if !ok {
				l = link{-1, -1}
			}
			if l.a < 0 {
				l.a = int32(y)
			} else {
				l.b = int32(y)
			}
			links[x] = l
		}
		add(e1, e2)
		add(e2, e1)
	}
	for i := 0; i < pr-1; i++ {
		for j := 0; j < pc-1; j++ {
			tl, tr, br, bl := val(i, j) >= thr, val(i, j+1) >= thr, val(i+1, j+1) >= thr, val(i+1, j) >= thr
			top, right, bottom, left := h(i, j), v(i, j+1), h(i+1, j), v(i, j)
			switch {
			case tl == tr && tr == br && br == bl:
				// no crossing
			case tl == br && tr == bl && tl != tr: // saddle
				mean := (val(i, j) + val(i, j+1) + val(i+1, j+1) + val(i+1, j)) / 4
				centre := mean >= thr
				if centre == tl {
					// tl and br are joined through the centre: cut off tr and bl.
					connect(top, right)
					connect(left, bottom)
				} else {
					connect(top, left)
					connect(right, bottom)
				}
			default:
				var es []int
				if tl != tr {
					es = append(es, top)
				}
				if tr != br {
					es = append(es, right)
				}
				if br != bl {
					es = append(es, bottom)
				}
				if bl != tl {
					es = append(es, left)
				}
				connect(es[0], es[1])
			}
		}
	}
	pos := func(e int) Point {
		cell := e / 2
		i, j := cell/pc, cell%pc
		i2, j2 := i, j+1
		if e%2 == 1 {
			i2, j2 = i+1, j
		}
		a, b := val(i, j), val(i2, j2)
		t := float64((thr - a) / (b - a))
		t = min(max(t, 1e-3), 1-1e-3)
		return Point{Row: float64(i) + t*float64(i2-i) - 1, Col: float64(j) + t*float64(j2-j) - 1}
	}
	// Walk the loops in a fixed order (lowest edge id first) so the output is deterministic.
	ids := make([]int, 0, len(links))
	for e := range links {
		ids = append(ids, e)
	}
	slices.Sort(ids)
	seen := make(map[int]bool, len(links))
	var loops []Loop
	for _, start := range ids {
		if seen[start] {
			continue
		}
		var pts []Point
		prev, cur := -1, start
		for {
			seen[cur] = true
			pts = append(pts, pos(cur))
			l := links[cur]
			next := int(l.a)
			if next == prev {
				next = int(l.b)
			}
			if next == start || next < 0 || seen[next] {
				break
			}
			prev, cur = cur, next
		}
		if len(pts) >= 3 {
			loops = append(loops, Loop{Points: pts})
		}
	}
	classify(loops)
	return loops
}

// classify marks holes by nesting depth (a loop inside an odd number of others is a hole) and
// orients every loop by the convention of SignedArea: outer loops positive, holes negative.
func classify(loops []Loop) {
	for i := range loops {
		depth := 0
		p := loops[i].Points[0]
		for j := range loops {
			if i != j && inside(loops[j].Points, p) {
				depth++
			}
		}
		loops[i].Hole = depth%2 == 1
		if a := SignedArea(loops[i].Points); (a < 0) != loops[i].Hole {
			reverse(loops[i].Points)
		}
	}
}

// SignedArea is the shoelace area in pixel units of a closed polygon with x = Col and y = Row.
// With rows growing downwards on screen, a positive area runs clockwise as displayed; Midline's
// outer loops have positive area and holes negative (the orientation of the patient plane
// follows from the slice's cosines when written out).
func SignedArea(pts []Point) float64 {
	var s float64
	for i, a := range pts {
		b := pts[(i+1)%len(pts)]
		s += a.Col*b.Row - b.Col*a.Row
	}
	return s / 2
}

// inside is the even-odd test of p against a closed polygon.
func inside(poly []Point, p Point) bool {
	in := false
	for i, a := range poly {
		b := poly[(i+1)%len(poly)]
		if (a.Row > p.Row) != (b.Row > p.Row) {
			x := a.Col + (p.Row-a.Row)/(b.Row-a.Row)*(b.Col-a.Col)
			if p.Col < x {
				in = !in
			}
		}
	}
	return in
}

func reverse(p []Point) {
	for i, j := 0, len(p)-1; i < j; i, j = i+1, j-1 {
		p[i], p[j] = p[j], p[i]
	}
}
