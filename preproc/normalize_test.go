package preproc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestFitNormalizationRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float32
	}{
		{"empty", nil},
		{"constant image", slices.Repeat([]float32{812}, 4096)},
		{"zero image", make([]float32, 4096)},
		{"two levels", append(make([]float32, 2000), slices.Repeat([]float32{900}, 2000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FitNormalization(tc.values, 0.5, 99.5)
			if !errors.Is(err, ErrNoForeground) {
				t.Fatalf("got %v, want ErrNoForeground", err)
			}
			t.Log(err)
		})
	}
}

// The radix selection gives the same nearest-rank percentiles as sorting, for negative,
// positive, repeated and subnormal values.
func TestSelectRanksMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	for trial := range 50 {
		n := 1 + rng.IntN(3000)
		v := make([]float32, n)
		for i := range v {
			switch rng.IntN(5) {
			case 0:
				v[i] = float32(rng.IntN(7)) - 3
			case 1:
				v[i] = math.Float32frombits(rng.Uint32() & 0x807FFFFF) // subnormal or zero
			default:
				v[i] = float32(rng.NormFloat64() * 1000)
			}
		}
		thr := float32(rng.NormFloat64() * 500)
		var fg []float32
		for _, x := range v {
			if x > thr {
				fg = append(fg, x)
			}
		}
		if len(fg) == 0 {
			continue
		}
		slices.Sort(fg)
		for _, p := range [][2]float64{{0.5, 99.5}, {0, 100}, {50, 75}, {1, 99}} {
			ranks := [2]int{nearestRank(p[0], len(fg)), nearestRank(p[1], len(fg))}
			hist := make([]int, 1<<16)
			for _, x := range fg {
				hist[key(x)>>16]++
			}
			got := selectRanks(v, thr, ranks, hist)
			want := [2]float32{fg[ranks[0]-1], fg[ranks[1]-1]}
			if got != want { // -0 and +0 compare equal, as their order in a sort is arbitrary
				t.Fatalf("trial %d p %v: got %v, want %v", trial, p, got, want)
			}
		}
	}
}

func TestNearestRank(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		n    int
		want int
	}{
		{0, 10, 1}, {0.5, 10, 1}, {10, 10, 1}, {10.1, 10, 2}, {99.5, 10, 10}, {100, 10, 10},
		{0.5, 1000, 5}, {99.5, 1000, 995}, {50, 1, 1},
	} {
		if got := nearestRank(tc.p, tc.n); got != tc.want {
			t.Errorf("nearestRank(%v, %d) = %d, want %d", tc.p, tc.n, got, tc.want)
		}
	}
}

func TestResampledSize(t *testing.T) {
	for _, tc := range []struct {
		rows, cols int
		spacing    [2]float64
		scale      float64
		r, c       int
	}{
		{160, 160, [2]float64{1.25, 1.25}, 1, 200, 200},
		{160, 160, [2]float64{1.25, 1.25}, 2, 100, 100},
		{5, 3, [2]float64{1, 1}, 2, 2, 2}, // 2.5 and 1.5 round half to even
		{7, 1, [2]float64{1, 1}, 100, 1, 1},
		{256, 192, [2]float64{0.9375, 1.25}, 1, 240, 240},
	} {
		r, c := ResampledSize(tc.rows, tc.cols, tc.spacing, tc.scale)
		if r != tc.r || c != tc.c {
			t.Errorf("%dx%d at %v to %v: %dx%d, want %dx%d", tc.rows, tc.cols, tc.spacing, tc.scale, r, c, tc.r, tc.c)
		}
	}
}

// Resampling a constant gives the constant; the way back from the same size is the identity.
func TestResampleProperties(t *testing.T) {
	img := slices.Repeat([]float32{3.5}, 37*23)
	r, _ := NewResampler(37, 23, [2]float64{0.7, 1.9}, 1.3)
	or, oc := r.OutSize()
	out := make([]float32, or*oc)
	r.Resample(out, img)
	for i, v := range out {
		if v != 3.5 {
			t.Fatalf("constant image resampled to %v at %d", v, i)
		}
	}
	for i := range img {
		img[i] = float32(i % 13)
	}
	id, _ := NewResamplerTo(37, 23, 37, 23)
	same := make([]float32, len(img))
	id.Resample(same, img)
	if !slices.Equal(same, img) {
		t.Error("resampling to the same grid is not the identity")
	}
}

// A series large enough to be split over workers fits the normalisation one goroutine fits,
// and the first NaN is still the one reported.
func TestFitNormalizationWorkersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	vol := make([]float32, 3<<20)
	for i := range vol {
		if i%3 == 0 {
			vol[i] = float32(rng.NormFloat64()*4 + 10) // background
		} else {
			vol[i] = float32(rng.NormFloat64()*150 + 900) // head
		}
	}
	defer func(v int) { parallelValues = v }(parallelValues)
	parallelValues = 1 << 20
	par, err := FitNormalization(vol, 0.5, 99.5)
	if err != nil {
		t.Fatal(err)
	}
	parallelValues = math.MaxInt
	one, err := FitNormalization(vol, 0.5, 99.5)
	if err != nil {
		t.Fatal(err)
	}
	if par != one {
		t.Fatalf("split passes give %+v, one pass %+v", par, one)
	}
	parallelValues = 1 << 20
	vol[len(vol)-5], vol[len(vol)-3] = float32(math.NaN()), float32(math.Inf(1))
	if _, err := FitNormalization(vol, 0.5, 99.5); err == nil || !errors.Is(err, ErrBadValues) ||
		!strings.Contains(err.Error(), fmt.Sprintf("voxel %d is NaN", len(vol)-5)) {
		t.Fatalf("got %v", err)
	}
}

// A large slice split over workers gives the bytes one worker gives (the goldens are small
// enough to run on one): shrinking with the filter, and the unfiltered map back.
func TestResampleWorkersAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	img := make([]float32, 512*512)
	for i := range img {
		img[i] = rng.Float32() * 1000
	}
	for _, mk := range []func() *Resampler{
		func() *Resampler { r, _ := NewResampler(512, 512, [2]float64{0.45, 0.45}, 1); return r },
		func() *Resampler { r, _ := NewResampler(512, 512, [2]float64{0.45, 0.5}, 2); return r },
		func() *Resampler { r, _ := NewResamplerTo(230, 230, 512, 512); return r },
	} {
		par, one := mk(), mk()
		one.work = one.work[:1]
		for len(par.work) < 3 { // whatever GOMAXPROCS is here
			w := par.work[0]
			par.work = append(par.work, scratch{line: make([]float64, len(w.line)),
				lineOut: make([]float64, len(w.lineOut)), acc: make([]float64, len(w.acc))})
		}
		src := img[:par.inR*par.inC]
		or, oc := par.OutSize()
		a, b := make([]float32, or*oc), make([]float32, or*oc)
		par.Resample(a, src)
		one.Resample(b, src)
		if !slices.Equal(a, b) {
			t.Fatalf("%dx%d to %dx%d: %d workers differ from one", par.inR, par.inC, or, oc, len(par.work))
		}
	}
}

// Resamplers give the goldens' results through the accel.Resampler-shaped API.
func TestResamplersMatchGoldens(t *testing.T) {
	g := readGoldenIndex(t)
	z := Plane{Rows: g.Native.Shape[0], Cols: g.Native.Shape[1], Pix: readF32(t, g.Native)}
	var rs Resamplers
	c := g.Resample["odd_3.0"]
	for range 2 { // the second round reuses the cached resamplers
		p := rs.ToScale(z, c.Spacing, c.Scale)
		if p.Rows != c.Shape[0] || p.Cols != c.Shape[1] || !slices.Equal(p.Pix, readF32(t, c.goldenImage)) {
			t.Fatalf("ToScale: %dx%d", p.Rows, p.Cols)
		}
		back := rs.ToNative(p, z.Rows, z.Cols)
		if !slices.Equal(back.Pix, readF32(t, *c.Back)) {
			t.Fatal("ToNative differs from infer.to_native")
		}
	}
	if len(rs.m) != 2 {
		t.Errorf("%d cached resamplers, want 2", len(rs.m))
	}
	if p := rs.ToScale(Plane{Rows: 3, Cols: 3, Pix: make([]float32, 9)}, [2]float64{0, 1}, 1); len(p.Pix) != 0 {
		t.Error("zero spacing resampled")
	}
}

// A constant series loads (nothing is wrong with its files) and is refused by normalisation.
func TestConstantSeriesRefusedByNormalization(t *testing.T) {
	s := defaultSynth()
	s.value = func(i, r, c int) uint16 { return 700 }
	v, err := LoadSeries(context.Background(), s.write(t, t.TempDir()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FitNormalization(v.Pixels, 0.5, 99.5); !errors.Is(err, ErrNoForeground) {
		t.Fatalf("got %v, want ErrNoForeground", err)
	}
}
