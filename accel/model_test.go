package accel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeRuntime stands in for the TFLite library; it records what accel asks of it.
type fakeRuntime struct {
	probeErr error
	openErr  error
	it       *fakeInterp
	opened   []Options
}

func (f *fakeRuntime) version() string        { return "9.9.9" }
func (f *fakeRuntime) probe(lib string) error { return f.probeErr }
func (f *fakeRuntime) open(path string, o Options) (interpreter, error) {
	f.opened = append(f.opened, o)
	if f.openErr != nil {
		return nil, f.openErr
	}
	return f.it, nil
}

type fakeInterp struct {
	in, out   []TensorInfo
	lastInput []byte
	result    []byte
	invokeErr error
	closed    int
}

func (f *fakeInterp) inputs() []TensorInfo  { return f.in }
func (f *fakeInterp) outputs() []TensorInfo { return f.out }
func (f *fakeInterp) setInput(i int, b []byte) error {
	f.lastInput = slices.Clone(b)
	return nil
}
func (f *fakeInterp) invoke() error { return f.invokeErr }
func (f *fakeInterp) output(i int, b []byte) error {
	copy(b, f.result)
	return nil
}
func (f *fakeInterp) close() { f.closed++ }

// modelFile writes a stand-in model file; the fake runtime never parses it, but Open reads it to
// tell Edge TPU models from plain ones.
func modelFile(t *testing.T, compiled bool) string {
	t.Helper()
	body := "TFL3 stand-in"
	if compiled {
		body += " " + edgeTPUCustomOp
	}
	p := filepath.Join(t.TempDir(), "m.tflite")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func int8Tensor(name string, shape ...int) TensorInfo {
	t := TensorInfo{Name: name, Type: Int8, Shape: shape, Scale: 1.0 / 256, ZeroPoint: -128}
	t.Bytes = t.Elements()
	return t
}

func goodInterp() *fakeInterp {
	return &fakeInterp{
		in:     []TensorInfo{int8Tensor("image", 1, 2, 2, 1)},
		out:    []TensorInfo{int8Tensor("prob", 1, 2, 2, 1)},
		result: []byte{1, 2, 0xff, 0x80},
	}
}

func TestOpenChecksTheModelSignature(t *testing.T) {
	float := int8Tensor("image", 1, 2, 2, 1)
	float.Type = Float32
	dynamic := int8Tensor("image", 1, -1, 2, 1)
	batch := int8Tensor("image", 2, 2, 2, 1)
	noScale := int8Tensor("image", 1, 2, 2, 1)
	noScale.Scale = 0
	tests := []struct {
		name    string
		in, out []TensorInfo
		want    string
	}{
		{"two inputs", []TensorInfo{int8Tensor("a", 1, 2, 2, 1), int8Tensor("b", 1, 2, 2, 1)}, nil, "2 inputs"},
		{"float input", []TensorInfo{float}, []TensorInfo{int8Tensor("p", 1, 2, 2, 1)}, "want int8"},
		{"dynamic shape", []TensorInfo{dynamic}, []TensorInfo{int8Tensor("p", 1, 2, 2, 1)}, "dynamic"},
		{"batch of two", []TensorInfo{batch}, []TensorInfo{int8Tensor("p", 1, 2, 2, 1)}, "[1,H,W,C]"},
		{"not quantized", []TensorInfo{noScale}, []TensorInfo{int8Tensor("p", 1, 2, 2, 1)}, "quantization"},
		{"3-D output", []TensorInfo{int8Tensor("i", 1, 2, 2, 1)}, []TensorInfo{int8Tensor("p", 1, 4, 1)}, "[1,H,W,C]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := &fakeInterp{in: tc.in, out: tc.out}
			_, err := open(&fakeRuntime{it: it}, modelFile(t, false), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if it.closed != 1 {
				t.Errorf("rejected interpreter closed %d times, want 1", it.closed)
			}
		})
	}
}

func TestOpenDefaultsAndValidatesOptions(t *testing.T) {
	r := &fakeRuntime{it: goodInterp()}
	m, err := open(r, modelFile(t, false), Options{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Engine() != CPU || r.opened[0].Engine != CPU || r.opened[0].Threads != 3 {
		t.Errorf("engine %q, runtime asked for %+v; want cpu with 3 threads", m.Engine(), r.opened[0])
	}
	for _, o := range []Options{{Engine: "gpu"}, {Threads: -1}} {
		if _, err := open(&fakeRuntime{it: goodInterp()}, modelFile(t, false), o); err == nil {
			t.Errorf("open with %+v succeeded", o)
		}
	}
}

func TestEdgeTPUIsProbedBeforeTheDelegate(t *testing.T) {
	r := &fakeRuntime{it: goodInterp(), probeErr: errors.New("libedgetpu.so.1: cannot open shared object file")}
	_, err := open(r, modelFile(t, true), Options{Engine: EdgeTPU})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "libedgetpu.so.1") {
		t.Fatalf("err = %v, want ErrUnavailable naming the library", err)
	}
	if len(r.opened) != 0 {
		t.Error("the runtime was asked to build an interpreter although the Edge TPU library is missing")
	}
}

func TestRunMovesBytesUnchanged(t *testing.T) {
	it := goodInterp()
	m, err := open(&fakeRuntime{it: it}, modelFile(t, false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int8, 4)
	if err := m.Run(context.Background(), []int8{-128, -1, 0, 127}, out); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x80, 0xff, 0, 0x7f}; !slices.Equal(it.lastInput, want) {
		t.Errorf("interpreter got input % x, want % x", it.lastInput, want)
	}
	if want := []int8{1, 2, -1, -128}; !slices.Equal(out, want) {
		t.Errorf("output %v, want %v", out, want)
	}
}

func TestRunRefusesBadCalls(t *testing.T) {
	m, err := open(&fakeRuntime{it: goodInterp()}, modelFile(t, false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background(), make([]int8, 3), make([]int8, 4)); err == nil {
		t.Error("short input accepted")
	}
	if err := m.Run(context.Background(), make([]int8, 4), make([]int8, 5)); err == nil {
		t.Error("long output accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Run(ctx, make([]int8, 4), make([]int8, 4)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	m.Close()
	m.Close()
	if err := m.Run(context.Background(), make([]int8, 4), make([]int8, 4)); !errors.Is(err, ErrClosed) {
		t.Errorf("run after close: %v, want ErrClosed", err)
	}
}

func TestRunReportsInvokeFailure(t *testing.T) {
	it := goodInterp()
	it.invokeErr = errors.New("node 3 failed")
	m, err := open(&fakeRuntime{it: it}, modelFile(t, false), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Run(context.Background(), make([]int8, 4), make([]int8, 4)); err == nil || !strings.Contains(err.Error(), "node 3") {
		t.Errorf("err = %v", err)
	}
}

func TestEnginesReportsWhyEdgeTPUIsMissing(t *testing.T) {
	got := engines(&fakeRuntime{probeErr: errors.New("no such file")})
	want := []EngineStatus{
		{Kind: CPU, Available: true, Detail: "TFLite 9.9.9 builtin kernels"},
		{Kind: EdgeTPU, Available: false, Detail: "no such file"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("engines = %+v, want %+v", got, want)
	}
	if got := engines(&fakeRuntime{}); !got[1].Available {
		t.Errorf("edgetpu with its library: %+v", got[1])
	}
}

func TestEngineAndCompiledModelMustAgree(t *testing.T) {
	r := &fakeRuntime{it: goodInterp()}
	if _, err := open(r, modelFile(t, false), Options{Engine: EdgeTPU}); err == nil || !strings.Contains(err.Error(), "not compiled for the Edge TPU") {
		t.Errorf("plain model on edgetpu: %v", err)
	}
	if _, err := open(r, modelFile(t, true), Options{Engine: CPU}); err == nil || !strings.Contains(err.Error(), "compiled for the Edge TPU") {
		t.Errorf("compiled model on cpu: %v", err)
	}
	if len(r.opened) != 0 {
		t.Error("the runtime was asked to build an interpreter for a mismatched model")
	}
}
