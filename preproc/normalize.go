package preproc

import (
	"fmt"
	"math"
)

// Normalization is a fitted percentile-zscore (DESIGN.md; docs/contracts.md, Preprocessing):
// voxels above the Otsu Threshold are the foreground; Low and High are its nearest-rank
// percentiles; Mean and Std those of the foreground clipped to [Low, High].
type Normalization struct {
	Threshold  float64
	Low, High  float64
	Mean, Std  float64
	Foreground int // voxels above Threshold
}

// FitNormalization fits percentile-zscore on a whole series' real values, as
// midline_model.data.fit_normalization does. It streams over the values a few times and holds
// no copy of them: the percentiles come from a two-pass radix selection on the float32 bits.
func FitNormalization(values []float32, pLow, pHigh float64) (Normalization, error) {
	if len(values) == 0 {
		return Normalization{}, fmt.Errorf("%w: no voxels", ErrNoForeground)
	}
	if !(pLow >= 0 && pLow < pHigh && pHigh <= 100) {
		return Normalization{}, fmt.Errorf("preproc: percentiles %v and %v", pLow, pHigh)
	}
	// The loader refuses NaN and Inf; a volume made otherwise may hold them.
	lo, hi, bad := valueRange(values)
	if bad >= 0 {
		return Normalization{}, fmt.Errorf("%w: voxel %d is %v", ErrBadValues, bad, values[bad])
	}
	t := otsu(values, lo, hi)
	t32 := float32(t) // numpy compares the float32 volume with the threshold in float32
	k := workers(len(values), parallelValues)
	hists := make([][]int, k)
	counts := make([]int, k)
	spread(k, len(values), func(w, from, to int) {
		h := make([]int, 1<<16)
		c := 0
		for _, v := range values[from:to] {
			if v > t32 {
				h[key(v)>>16]++
				c++
			}
		}
		hists[w], counts[w] = h, c
	})
	hist, n := hists[0], counts[0]
	for w := 1; w < k; w++ {
		for i, c := range hists[w] {
			hist[i] += c
		}
		n += counts[w]
	}
	if n == 0 {
		return Normalization{}, fmt.Errorf("%w: series has no foreground (constant image?)", ErrNoForeground)
	}
	ranks := [2]int{nearestRank(pLow, n), nearestRank(pHigh, n)}
	q := selectRanks(values, t32, ranks, hist)
	nm := Normalization{Threshold: t, Low: float64(q[0]), High: float64(q[1]), Foreground: n}
	nm.Mean, nm.Std = clippedMoments(values, t32, q[0], q[1], n)
	if !(nm.Std > 0) {
		return Normalization{}, fmt.Errorf("%w: series foreground has no spread", ErrNoForeground)
	}
	return nm, nil
}

// nearestRank is the 1-based rank of percentile p among n sorted values: max(1, ceil(p/100 n)).
func nearestRank(p float64, n int) int {
	return min(max(1, int(math.Ceil(p/100*float64(n)))), n)
}

// Apply normalises src into dst (which may be src): clip to [Low, High], subtract Mean, divide
// by Std, in float32 arithmetic as numpy does it for a float32 array.
func (nm Normalization) Apply(dst, src []float32) {
	lo, hi, m, s := float32(nm.Low), float32(nm.High), float32(nm.Mean), float32(nm.Std)
	for i, x := range src {
		x = min(max(x, lo), hi)
		dst[i] = float32(x-m) / s
	}
}

// PadValue is the normalised clip floor: what tiles hold beyond the image (what air maps to).
// The reference (data.pad_value) computes it in float64 and rounds once, which can differ by
// an ulp from Apply's float32 arithmetic; the reference wins.
func (nm Normalization) PadValue() float32 {
	return float32((nm.Low - nm.Mean) / nm.Std)
}

// OtsuThreshold is Otsu's threshold on a 256-bin histogram spanning [min, max] of the values:
// the upper edge of the bin that maximises the between-class variance (numpy's binning and
// arithmetic reproduced step by step).
func OtsuThreshold(values []float32) float64 {
	lo, hi, _ := valueRange(values)
	return otsu(values, lo, hi)
}

// parallelValues is the number of values below which one goroutine does a whole pass (a
// variable for the test that holds the split passes to the single one).
var parallelValues = 1 << 20

// valueRange returns the smallest and largest of the finite values and the index of the first
// NaN or infinity (-1 when there is none).
func valueRange(values []float32) (lo, hi float64, bad int) {
	type part struct {
		lo, hi float64
		bad    int
	}
	k := workers(len(values), parallelValues)
	parts := make([]part, k)
	spread(k, len(values), func(w, from, to int) {
		p := part{lo: math.Inf(1), hi: math.Inf(-1), bad: -1}
		for i, v := range values[from:to] {
			x := float64(v)
			if math.IsNaN(x) || math.IsInf(x, 0) {
				if p.bad < 0 {
					p.bad = from + i
				}
				continue
			}
			p.lo, p.hi = min(p.lo, x), max(p.hi, x)
		}
		parts[w] = p
	})
	lo, hi, bad = math.Inf(1), math.Inf(-1), -1
	for _, p := range parts {
		lo, hi = min(lo, p.lo), max(hi, p.hi)
		if bad < 0 {
			bad = p.bad
		}
	}
	return lo, hi, bad
}

// otsu is OtsuThreshold given the values' range.
func otsu(values []float32, lo, hi float64) float64 {
	if !(hi > lo) {
		return lo
	}
	const bins = 256
	var edges [bins + 1]float64
	step := (hi - lo) / bins
	for i := range bins {
		edges[i] = float64(float64(i)*step) + lo
	}
	edges[bins] = hi
	// numpy divides by (hi - lo); a reciprocal can land one bin off, which the comparisons
	// with the edges below correct exactly as numpy's own off-by-one correction does.
	inv := bins / (hi - lo)
	k := workers(len(values), parallelValues)
	hists := make([][bins]int64, k)
	spread(k, len(values), func(w, from, to int) {
		h := &hists[w]
		for _, v := range values[from:to] {
			x := float64(v)
			i := min(max(int((x-lo)*inv), 0), bins)
			if i == bins {
				i--
			}
			if x < edges[i] {
				i--
			}
			if i != bins-1 && x >= edges[i+1] {
				i++
			}
			h[i]++
		}
	})
	var hist [bins]int64
	for _, h := range hists {
		for i, c := range h {
			hist[i] += c
		}
	}
	var w0 [bins]int64
	var m [bins]float64
	var s float64
	var acc int64
	for i := range bins {
		acc += hist[i]
		w0[i] = acc
		centre := (edges[i] + edges[i+1]) / 2
		s = s + float64(float64(hist[i])*centre)
		m[i] = s
	}
	best, arg := math.Inf(-1), 0
	total, mTotal := w0[bins-1], m[bins-1]
	for i := range bins {
		w1 := total - w0[i]
		mu0 := m[i] / float64(w0[i])
		mu1 := (mTotal - m[i]) / float64(w1)
		d := mu0 - mu1
		b := float64(w0[i]*w1) * float64(d*d)
		if math.IsNaN(b) || math.IsInf(b, 0) {
			b = -1
		}
		if b > best {
			best, arg = b, i
		}
	}
	return edges[arg+1]
}

// key maps a float32 to a uint32 whose order is the numeric order.
func key(f float32) uint32 {
	u := math.Float32bits(f)
	if u&0x80000000 != 0 {
		return ^u
	}
	return u | 0x80000000
}

func unkey(k uint32) float32 {
	if k&0x80000000 != 0 {
		return math.Float32frombits(k &^ 0x80000000)
	}
	return math.Float32frombits(^k)
}

// selectRanks returns the values of the given 1-based ranks among the values above t, given
// hist, the counts of those values by the top 16 bits of their order-preserving key: one more
// counting pass over the low 16 bits inside the two buckets holding the ranks.
func selectRanks(values []float32, t float32, ranks [2]int, hist []int) [2]float32 {
	var hi [2]uint32
	var left [2]int
	for j, r := range ranks {
		hi[j], left[j] = bucket(hist, r)
	}
	k := workers(len(values), parallelValues)
	lows := make([][2][]int, k)
	spread(k, len(values), func(w, from, to int) {
		low := [2][]int{make([]int, 1<<16), make([]int, 1<<16)}
		for _, v := range values[from:to] {
			if v > t {
				k := key(v)
				for j := range hi {
					if k>>16 == hi[j] {
						low[j][k&0xFFFF]++
					}
				}
			}
		}
		lows[w] = low
	})
	low := lows[0]
	for _, l := range lows[1:] {
		for j := range low {
			for i, c := range l[j] {
				low[j][i] += c
			}
		}
	}
	var out [2]float32
	for j := range ranks {
		lo, _ := bucket(low[j], left[j])
		out[j] = unkey(hi[j]<<16 | lo)
	}
	return out
}

// bucket finds the bucket holding the r-th (1-based) counted item and r's rank inside it.
func bucket(hist []int, r int) (uint32, int) {
	for i, c := range hist {
		if r <= c {
			return uint32(i), r
		}
		r -= c
	}
	return uint32(len(hist) - 1), r
}

// clippedMoments returns the mean and population standard deviation of the foreground clipped
// to [lo, hi], in float64 with compensated sums (numpy sums pairwise; both are within an ulp or
// so of the exact sum, far below float32 rounding). Each pass sums fixed chunks of momentChunk
// values, shared among the workers, then the chunks' sums in order: the result depends on the
// values alone, not on how many workers there are.
func clippedMoments(values []float32, t, lo, hi float32, n int) (mean, std float64) {
	mean = chunkedSum(values, func(vs []float32) (s neumaier) {
		for _, v := range vs {
			if v > t {
				s.add(float64(min(max(v, lo), hi)))
			}
		}
		return s
	}) / float64(n)
	q := chunkedSum(values, func(vs []float32) (s neumaier) {
		for _, v := range vs {
			if v > t {
				d := float64(min(max(v, lo), hi)) - mean
				s.add(d * d)
			}
		}
		return s
	})
	return mean, math.Sqrt(q / float64(n))
}

// momentChunk is how many values clippedMoments sums before it combines.
const momentChunk = 1 << 18

// chunkedSum adds up sum(chunk), the compensated sums of the values' chunks (clippedMoments).
func chunkedSum(values []float32, sum func([]float32) neumaier) float64 {
	sums := make([]neumaier, (len(values)+momentChunk-1)/momentChunk)
	spread(min(workers(len(values), parallelValues), len(sums)), len(sums), func(_, from, to int) {
		for c := from; c < to; c++ {
			sums[c] = sum(values[c*momentChunk : min((c+1)*momentChunk, len(values))])
		}
	})
	var all neumaier
	for _, s := range sums {
		all.add(s.s)
		all.add(s.c)
	}
	return all.sum()
}

type neumaier struct{ s, c float64 }

func (a *neumaier) add(x float64) {
	t := a.s + x
	if math.Abs(a.s) >= math.Abs(x) {
		a.c += (a.s - t) + x
	} else {
		a.c += (x - t) + a.s
	}
	a.s = t
}

func (a *neumaier) sum() float64 { return a.s + a.c }
