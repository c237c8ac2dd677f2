package accel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/midline-rt/midline/internal/testenv"
)

// goldenManifest is accel/testdata/fixture_golden/manifest.json, written by
// `python -m midline_model.fixture golden`.
type goldenManifest struct {
	Model       string `json:"model"`
	ModelSHA256 string `json:"model_sha256"`
	Input       struct {
		Shape     []int   `json:"shape"`
		Scale     float64 `json:"scale"`
		ZeroPoint int     `json:"zero_point"`
	} `json:"input"`
	Output struct {
		Shape     []int   `json:"shape"`
		Scale     float64 `json:"scale"`
		ZeroPoint int     `json:"zero_point"`
	} `json:"output"`
	Cases []struct {
		Name         string `json:"name"`
		Input        string `json:"input"`
		Output       string `json:"output"`
		OutputSHA256 string `json:"output_sha256"`
	} `json:"cases"`
}

const goldenDir = "testdata/fixture_golden"

func readGolden(t testing.TB) goldenManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m goldenManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("manifest.json lists no cases")
	}
	return m
}

func readInt8s(t testing.TB, name string) []int8 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	v := make([]int8, len(b))
	for i, x := range b {
		v[i] = int8(x)
	}
	return v
}

// TestFixtureMatchesTensorFlowBitExact runs the fixture model through go-tflite on Debian's
// TFLite library and requires every output byte to equal what TensorFlow's Python interpreter
// (builtin kernels, no default delegates) produced for the same input.
func TestFixtureMatchesTensorFlowBitExact(t *testing.T) {
	g := readGolden(t)
	m, err := Open(filepath.Join("testdata", g.Model), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	in, out := m.Input(), m.Output()
	if !slices.Equal(in.Shape, g.Input.Shape) || in.Scale != g.Input.Scale || in.ZeroPoint != g.Input.ZeroPoint {
		t.Fatalf("input tensor %+v, golden says %+v", in, g.Input)
	}
	if !slices.Equal(out.Shape, g.Output.Shape) || out.Scale != g.Output.Scale || out.ZeroPoint != g.Output.ZeroPoint {
		t.Fatalf("output tensor %+v, golden says %+v", out, g.Output)
	}
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			want := readInt8s(t, c.Output)
			got := make([]int8, out.Elements())
			if err := m.Run(context.Background(), readInt8s(t, c.Input), got); err != nil {
				t.Fatal(err)
			}
			if len(want) != len(got) {
				t.Fatalf("golden has %d values, model gives %d", len(want), len(got))
			}
			diff, first := 0, -1
			for i := range want {
				if want[i] != got[i] {
					if first < 0 {
						first = i
					}
					diff++
				}
			}
			if diff > 0 {
				t.Errorf("%d of %d output bytes differ from TensorFlow's; first at %d: got %d, want %d",
					diff, len(want), first, got[first], want[first])
			}
		})
	}
}

// TestFixtureRunsOnSeveralThreads checks that threading does not change int8 results.
func TestFixtureRunsOnSeveralThreads(t *testing.T) {
	g := readGolden(t)
	m, err := Open(filepath.Join("testdata", g.Model), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := g.Cases[len(g.Cases)-1]
	got := make([]int8, m.Output().Elements())
	if err := m.Run(context.Background(), readInt8s(t, c.Input), got); err != nil {
		t.Fatal(err)
	}
	want := readInt8s(t, c.Output)
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("byte %d: got %d, want %d", i, got[i], want[i])
		}
	}
}

func TestRuntimeIsTFLite2141(t *testing.T) {
	// The converter that makes our models is pinned to this version (scripts/model/pyproject.toml).
	if v := RuntimeVersion(); v != "2.14.1" {
		t.Errorf("TfLiteVersion() = %q, want 2.14.1", v)
	}
}

func TestOpenRejectsWhatIsNotAModel(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.tflite")
	if err := os.WriteFile(bad, []byte("this is not a flatbuffer"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, filepath.Join(t.TempDir(), "missing.tflite")} {
		if m, err := Open(p, Options{}); err == nil {
			m.Close()
			t.Errorf("Open(%s) succeeded", p)
		}
	}
}

func TestEdgeTPUWithoutItsLibraryIsAClearError(t *testing.T) {
	if err := lib.probe(EdgeTPULibrary); err == nil {
		t.Skip("libedgetpu.so.1 is installed here")
	}
	_, err := Open(compiledLookalike(t), Options{Engine: EdgeTPU})
	if err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), EdgeTPULibrary) {
		t.Fatalf("Open on edgetpu without its library: %v, want ErrUnavailable naming %s", err, EdgeTPULibrary)
	}
}

// compiledLookalike is the fixture model with the Edge TPU's custom op name appended: it passes
// the compiled-model check, and TFLite still reads it (trailing bytes are ignored).
func compiledLookalike(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixture.tflite"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "model_edgetpu.tflite")
	if err := os.WriteFile(p, append(b, edgeTPUCustomOp...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEdgeTPUStubThatFailsIsAClearError builds a stand-in libedgetpu.so.1 whose delegate
// creation fails, as the real one does without a device, and checks that opening a model on it
// is an error with no crash.
func TestEdgeTPUStubThatFailsIsAClearError(t *testing.T) {
	cc := testenv.Require(t, "cc")
	stub := filepath.Join(t.TempDir(), "libedgetpu.so.1")
	out, err := exec.Command(cc, "-shared", "-fPIC", "-o", stub, filepath.Join("testdata", "edgetpu_stub.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	o := Options{Engine: EdgeTPU, EdgeTPULibrary: stub}
	if err := lib.probe(stub); err != nil {
		t.Fatalf("the stub does not load: %v", err)
	}
	m, err := Open(compiledLookalike(t), o)
	if err == nil {
		m.Close()
		t.Fatal("a model opened on an Edge TPU delegate that failed")
	}
	if !strings.Contains(err.Error(), "no Edge TPU device found") {
		t.Errorf("the error does not carry the library's own reason: %v", err)
	}
}

func BenchmarkFixtureInvoke(b *testing.B) {
	g := readGolden(b)
	m, err := Open(filepath.Join("testdata", g.Model), Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	in, out := readInt8s(b, g.Cases[0].Input), make([]int8, m.Output().Elements())
	b.ResetTimer()
	for b.Loop() {
		if err := m.Run(context.Background(), in, out); err != nil {
			b.Fatal(err)
		}
	}
}
