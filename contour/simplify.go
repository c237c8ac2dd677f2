package contour

import (
	"cmp"
	"math"
	"slices"
)

// Simplify reduces a closed loop by Douglas-Peucker with tolerance tolMM, measured in
// millimetres on the slice (spacing: row spacing, column spacing), so anisotropic pixels are
// treated by their true size. Chords cut the inside of convex stretches, which would drop pixel
// centres lying just inside the boundary and shrink a lesion by a percent or two; so wherever
// the simplified loop would change which pixel centres are inside, the original point farthest
// from the offending chord is put back, until the simplified and the traced loop hold the same
// pixel centres. It never returns fewer than 3 points nor a self-intersecting polygon (the
// tolerance is halved until it does not cross itself; March's loops never do). maxPoints > 0
// caps the count by raising the tolerance, before all else; the tolerance used is returned.
func Simplify(pts []Point, spacing [2]float64, tolMM float64, maxPoints int) ([]Point, float64) {
	if len(pts) <= 3 || tolMM <= 0 {
		return pts, 0
	}
	pick := func(keep []bool) []Point {
		var out []Point
		for i, k := range keep {
			if k {
				out = append(out, pts[i])
			}
		}
		return out
	}
	for t := tolMM; t >= 1e-4; t /= 2 {
		keep := dpClosed(pts, spacing, t)
		keepCentres(pts, keep, t/math.Min(spacing[0], spacing[1]))
		out := pick(keep)
		for maxPoints > 0 && len(out) > maxPoints && t < 100 {
			t *= 1.5
			keep = dpClosed(pts, spacing, t)
			out = pick(keep)
		}
		if len(out) >= 3 && !selfIntersects(out) {
			return out, t
		}
	}
	return pts, 0
}

// dpClosed splits the loop at its first point and the point farthest from it, simplifies both
// halves, and says which points stay.
func dpClosed(pts []Point, sp [2]float64, tol float64) []bool {
	far, best := 0, -1.0
	for i, p := range pts {
		if d := dist2(pts[0], p, sp); d > best {
			far, best = i, d
		}
	}
	keep := make([]bool, len(pts))
	keep[0], keep[far] = true, true
	dp(pts, 0, far, sp, tol, keep)
	// Second half runs from far back round to the first point.
	ring := append(append([]Point(nil), pts[far:]...), pts[0])
	keep2 := make([]bool, len(ring))
	dp(ring, 0, len(ring)-1, sp, tol, keep2)
	for i := range ring[:len(ring)-1] {
		if keep2[i] {
			keep[far+i] = true
		}
	}
	// A sliver: keep at least three points, the third farthest from the chord.
	if n := count(keep); n < 3 {
		third, d := -1, -1.0
		for i, p := range pts {
			if e := segDist2(p, pts[0], pts[far], sp); !keep[i] && e > d {
				third, d = i, e
			}
		}
		if third >= 0 {
			keep[third] = true
		}
	}
	return keep
}

func count(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// keepCentres puts back original points until the kept polygon holds exactly the pixel centres
// the full loop holds (at most a few rounds; each round adds at least one point or stops).
// Only centres within tolPx (the tolerance in pixels) and a step of the traced loop can change
// side, so only those are tested.
func keepCentres(pts []Point, keep []bool, tolPx float64) {
	type cell struct{ r, c int }
	near := map[cell]bool{}
	reach := tolPx + 1.5 // a traced step is at most one cell diagonal
	for _, p := range pts {
		for r := int(math.Floor(p.Row - reach)); r <= int(math.Ceil(p.Row+reach)); r++ {
			for c := int(math.Floor(p.Col - reach)); c <= int(math.Ceil(p.Col+reach)); c++ {
				near[cell{r, c}] = true
			}
		}
	}
	cells := make([]cell, 0, len(near))
	inFull := make([]bool, 0, len(near))
	for q := range near {
		cells = append(cells, q)
	}
	slices.SortFunc(cells, func(a, b cell) int { return cmp.Or(a.r-b.r, a.c-b.c) })
	for _, q := range cells {
		inFull = append(inFull, inside(pts, Point{Row: float64(q.r), Col: float64(q.c)}))
	}
	for round := 0; round < 64; round++ {
		var idx []int
		for i, k := range keep {
			if k {
				idx = append(idx, i)
			}
		}
		simp := make([]Point, len(idx))
		for j, i := range idx {
			simp[j] = pts[i]
		}
		added := false
		for n, cq := range cells {
			q := Point{Row: float64(cq.r), Col: float64(cq.c)}
			if inFull[n] == inside(simp, q) {
				continue
			}
			// The nearest kept edge, and the dropped point between its ends farthest from it.
			best, bd := 0, math.Inf(1)
			for j := range idx {
				a, b := pts[idx[j]], pts[idx[(j+1)%len(idx)]]
				if d := segDist2(q, a, b, [2]float64{1, 1}); d < bd {
					best, bd = j, d
				}
			}
			a, b := idx[best], idx[(best+1)%len(idx)]
			far, fd := -1, -1.0
			for i := (a + 1) % len(pts); i != b; i = (i + 1) % len(pts) {
				if d := segDist2(pts[i], pts[a], pts[b], [2]float64{1, 1}); d > fd {
					far, fd = i, d
				}
			}
			if far >= 0 && !keep[far] {
				keep[far] = true
				added = true
			}
		}
		if !added {
			return
		}
	}
}

func dp(pts []Point, a, b int, sp [2]float64, tol float64, keep []bool) {
	if b <= a+1 {
		return
	}
	idx, best := -1, tol*tol
	for i := a + 1; i < b; i++ {
		if d := segDist2(pts[i], pts[a], pts[b], sp); d > best {
			idx, best = i, d
		}
	}
	if idx < 0 {
		return
	}
	keep[idx] = true
	dp(pts, a, idx, sp, tol, keep)
	dp(pts, idx, b, sp, tol, keep)
}

func dist2(a, b Point, sp [2]float64) float64 {
	dy, dx := (a.Row-b.Row)*sp[0], (a.Col-b.Col)*sp[1]
	return dx*dx + dy*dy
}

// segDist2 is the squared distance in mm from p to the segment a-b.
func segDist2(p, a, b Point, sp [2]float64) float64 {
	ax, ay := a.Col*sp[1], a.Row*sp[0]
	bx, by := b.Col*sp[1], b.Row*sp[0]
	px, py := p.Col*sp[1], p.Row*sp[0]
	dx, dy := bx-ax, by-ay
	l := dx*dx + dy*dy
	t := 0.0
	if l > 0 {
		t = math.Max(0, math.Min(1, ((px-ax)*dx+(py-ay)*dy)/l))
	}
	ex, ey := ax+t*dx-px, ay+t*dy-py
	return ex*ex + ey*ey
}

// selfIntersects reports whether two non-adjacent edges of the closed polygon cross or touch.
// Quadratic, with a bounding-box reject; loops here have at most a few thousand points.
func selfIntersects(pts []Point) bool {
	n := len(pts)
	if n < 4 {
		return false
	}
	for i := range n {
		a, b := pts[i], pts[(i+1)%n]
		for j := i + 2; j < n; j++ {
			if i == 0 && j == n-1 {
				continue // adjacent through the closing edge
			}
			c, d := pts[j], pts[(j+1)%n]
			if max(c.Col, d.Col) < min(a.Col, b.Col) || min(c.Col, d.Col) > max(a.Col, b.Col) ||
				max(c.Row, d.Row) < min(a.Row, b.Row) || min(c.Row, d.Row) > max(a.Row, b.Row) {
				continue
			}
			if segmentsMeet(a, b, c, d) {
				return true
			}
		}
	}
	return false
}

func cross(o, a, b Point) float64 {
	return (a.Col-o.Col)*(b.Row-o.Row) - (a.Row-o.Row)*(b.Col-o.Col)
}

func segmentsMeet(a, b, c, d Point) bool {
	d1, d2 := cross(c, d, a), cross(c, d, b)
	d3, d4 := cross(a, b, c), cross(a, b, d)
	if (d1 > 0) != (d2 > 0) && (d3 > 0) != (d4 > 0) && d1 != 0 && d2 != 0 && d3 != 0 && d4 != 0 {
		return true
	}
	on := func(p, q, r Point) bool { // r on segment p-q, given collinear
		return min(p.Col, q.Col) <= r.Col && r.Col <= max(p.Col, q.Col) && min(p.Row, q.Row) <= r.Row && r.Row <= max(p.Row, q.Row)
	}
	return d1 == 0 && on(c, d, a) || d2 == 0 && on(c, d, b) || d3 == 0 && on(a, b, c) || d4 == 0 && on(a, b, d)
}
