package preproc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// The goldens come from the Python reference (scripts/model/midline_model/goldens.py; the
// command is in testdata/README.md). Tolerance: float32 rounding only. The loaded volume and
// the Otsu threshold, percentiles and foreground count must be identical; mean and standard
// deviation agree to 1e-12 relative (numpy sums pairwise, Go with compensation); every image
// value agrees within one float32 ulp of its magnitude (the float64 sums inside scipy's filters
// may round the other way at a tie, and libm's exp may differ in the last bit).

type goldenImage struct {
	File  string `json:"file"`
	Shape []int  `json:"shape"`
}

type goldenIndex struct {
	Slice  int     `json:"slice"`
	PLow   float64 `json:"p_low"`
	PHigh  float64 `json:"p_high"`
	Series map[string]struct {
		Shape        []int   `json:"shape"`
		VolumeSHA256 string  `json:"volume_sha256"`
		Threshold    float64 `json:"threshold"`
		Low          float64 `json:"low"`
		High         float64 `json:"high"`
		Mean         float64 `json:"mean"`
		Std          float64 `json:"std"`
		Foreground   int     `json:"foreground"`
		PadValue     float64 `json:"pad_value"`
	} `json:"series"`
	Scaled struct {
		Series       string     `json:"series"`
		Scale        [2]float64 `json:"scale"`
		VolumeSHA256 string     `json:"volume_sha256"`
		Threshold    float64    `json:"threshold"`
		Low          float64    `json:"low"`
		High         float64    `json:"high"`
		Mean         float64    `json:"mean"`
		Std          float64    `json:"std"`
		Foreground   int        `json:"foreground"`
	} `json:"scaled"`
	Native   goldenImage `json:"native"`
	Resample map[string]struct {
		goldenImage
		Spacing [2]float64   `json:"spacing"`
		Scale   float64      `json:"scale"`
		Back    *goldenImage `json:"back"`
	} `json:"resample"`
}

const goldenDir = "testdata/goldens"

func readGoldenIndex(t *testing.T) goldenIndex {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenIndex
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func readF32(t *testing.T, g goldenImage) []float32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, g.File))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*g.Shape[0]*g.Shape[1] {
		t.Fatalf("%s: %d bytes for %v", g.File, len(b), g.Shape)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func volumeSHA256(p []float32) string {
	b := make([]byte, 4*len(p))
	for i, v := range p {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// compareF32 fails on any value beyond one float32 ulp and logs how many differ at all.
func compareF32(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	diff := 0
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		diff++
		m := max(math.Abs(float64(got[i])), math.Abs(float64(want[i])))
		ulp := math.Nextafter32(float32(m), float32(math.Inf(1))) - float32(m)
		if math.Abs(float64(got[i]-want[i])) > float64(ulp) {
			t.Fatalf("%s[%d] = %v, Python %v (beyond one ulp)", name, i, got[i], want[i])
		}
	}
	t.Logf("%s: %d values, %d differ by one ulp", name, len(got), diff)
}

func TestParityNormalization(t *testing.T) {
	g := readGoldenIndex(t)
	for seq, want := range g.Series {
		v, err := LoadSeries(context.Background(), phantomPaths(t, seq), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := volumeSHA256(v.Pixels); got != want.VolumeSHA256 {
			t.Errorf("%s: loaded volume differs from dicomio.read_series (sha256 %s, want %s)", seq, got, want.VolumeSHA256)
		}
		nm, err := FitNormalization(v.Pixels, g.PLow, g.PHigh)
		if err != nil {
			t.Fatal(err)
		}
		if nm.Threshold != want.Threshold || nm.Low != want.Low || nm.High != want.High || nm.Foreground != want.Foreground {
			t.Errorf("%s: %+v, want %+v", seq, nm, want)
		}
		if math.Abs(nm.Mean-want.Mean) > 1e-12*want.Mean || math.Abs(nm.Std-want.Std) > 1e-12*want.Std {
			t.Errorf("%s: mean %v std %v, want %v %v", seq, nm.Mean, nm.Std, want.Mean, want.Std)
		}
		if float64(nm.PadValue()) != want.PadValue {
			t.Errorf("%s: pad value %v, want %v", seq, nm.PadValue(), want.PadValue)
		}
		if seq == "T2" {
			z := make([]float32, v.Rows*v.Cols)
			nm.Apply(z, v.Slice(g.Slice))
			compareF32(t, "normalised slice", z, readF32(t, g.Native))
		}
	}
}

func TestParityResample(t *testing.T) {
	g := readGoldenIndex(t)
	z := readF32(t, g.Native)
	rows, cols := g.Native.Shape[0], g.Native.Shape[1]
	for name, c := range g.Resample {
		t.Run(name, func(t *testing.T) {
			r, err := NewResampler(rows, cols, c.Spacing, c.Scale)
			if err != nil {
				t.Fatal(err)
			}
			if or, oc := r.OutSize(); or != c.Shape[0] || oc != c.Shape[1] {
				t.Fatalf("size %dx%d, want %v", or, oc, c.Shape)
			}
			out := make([]float32, c.Shape[0]*c.Shape[1])
			r.Resample(out, z)
			compareF32(t, name, out, readF32(t, c.goldenImage))
			if c.Back == nil {
				return
			}
			b, err := NewResamplerTo(c.Shape[0], c.Shape[1], rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			native := make([]float32, rows*cols)
			b.Resample(native, readF32(t, c.goldenImage))
			compareF32(t, name+" back", native, readF32(t, *c.Back))
		})
	}
}

// A rescaled series (non-integer values, many levels) fits to the same parameters.
func TestParityNormalizationScaled(t *testing.T) {
	g := readGoldenIndex(t)
	want := g.Scaled
	v, err := LoadSeries(context.Background(), phantomPaths(t, want.Series), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := float32(want.Scale[0]), float32(want.Scale[1])
	for i, x := range v.Pixels {
		v.Pixels[i] = float32(x*a) + b
	}
	if got := volumeSHA256(v.Pixels); got != want.VolumeSHA256 {
		t.Fatalf("scaled volume differs from numpy's (sha256 %s)", got)
	}
	nm, err := FitNormalization(v.Pixels, g.PLow, g.PHigh)
	if err != nil {
		t.Fatal(err)
	}
	if nm.Threshold != want.Threshold || nm.Low != want.Low || nm.High != want.High || nm.Foreground != want.Foreground ||
		math.Abs(nm.Mean-want.Mean) > 1e-12*math.Abs(want.Mean) || math.Abs(nm.Std-want.Std) > 1e-12*want.Std {
		t.Errorf("%+v, want %+v", nm, want)
	}
}
