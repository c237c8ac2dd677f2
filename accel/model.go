package accel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"
)

// DType is the element type of a tensor, numbered as TfLiteType.
type DType int

// The tensor types accel meets. Models Midline runs have int8 inputs and outputs.
const (
	Float32 DType = 1
	Int32   DType = 2
	UInt8   DType = 3
	Int8    DType = 9
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case UInt8:
		return "uint8"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("type(%d)", int(d))
}

// TensorInfo describes a model input or output.
type TensorInfo struct {
	Name      string
	Type      DType
	Shape     []int
	Bytes     int     // size of the tensor's buffer
	Scale     float64 // real = Scale * (q - ZeroPoint)
	ZeroPoint int
}

// Elements is the number of values in the tensor.
func (t TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Options choose how a model is run.
type Options struct {
	Engine  Kind // CPU when empty
	Threads int  // CPU threads for TFLite's kernels; 0 lets TFLite choose
	// EdgeTPULibrary is the Edge TPU runtime to load; empty means libedgetpu.so.1 (tests point
	// it at a stub).
	EdgeTPULibrary string
}

func (o Options) edgeTPULibrary() string {
	if o.EdgeTPULibrary != "" {
		return o.EdgeTPULibrary
	}
	return EdgeTPULibrary
}

// runtime is the TFLite C library as accel uses it.
type runtime interface {
	version() string
	probe(library string) error
	open(path string, o Options) (interpreter, error)
}

// interpreter is one loaded model with its tensors allocated.
type interpreter interface {
	inputs() []TensorInfo
	outputs() []TensorInfo
	setInput(i int, b []byte) error
	invoke() error
	output(i int, b []byte) error
	close()
}

// Model is a full-integer model with one int8 input and one int8 output, loaded on an engine.
// Run may be called from several goroutines; calls are serialised, as one interpreter runs one
// invocation at a time.
type Model struct {
	mu     sync.Mutex
	it     interpreter
	in     TensorInfo
	out    TensorInfo
	engine Kind
}

// Open loads a .tflite file on the engine o.Engine and checks that it is a model Midline can run:
// one int8 input of shape [1,H,W,C], one int8 output of shape [1,H,W,C'].
func Open(path string, o Options) (*Model, error) { return open(lib, path, o) }

func open(r runtime, path string, o Options) (*Model, error) {
	if o.Engine == "" {
		o.Engine = CPU
	}
	if _, err := ParseKind(string(o.Engine)); err != nil {
		return nil, err
	}
	if o.Threads < 0 {
		return nil, fmt.Errorf("accel: threads must be >= 0, got %d", o.Threads)
	}
	compiled, err := compiledForEdgeTPU(path)
	if err != nil {
		return nil, fmt.Errorf("accel: open %s: %w", path, err)
	}
	switch {
	case o.Engine == EdgeTPU && !compiled:
		return nil, fmt.Errorf("accel: open %s on %s: the model is not compiled for the Edge TPU (no %s op): run edgetpu_compiler, or use the cpu engine", path, o.Engine, edgeTPUCustomOp)
	case o.Engine != EdgeTPU && compiled:
		return nil, fmt.Errorf("accel: open %s on %s: the model is compiled for the Edge TPU and needs its delegate: use the edgetpu engine or the bundle's cpu target", path, o.Engine)
	}
	if o.Engine == EdgeTPU {
		if err := r.probe(o.edgeTPULibrary()); err != nil {
			return nil, fmt.Errorf("accel: open %s on %s: %w: %v", path, o.Engine, ErrUnavailable, err)
		}
	}
	it, err := r.open(path, o)
	if err != nil {
		return nil, fmt.Errorf("accel: open %s on %s: %w", path, o.Engine, err)
	}
	m := &Model{it: it, engine: o.Engine}
	if err := m.checkSignature(); err != nil {
		it.close()
		return nil, fmt.Errorf("accel: open %s: %w", path, err)
	}
	return m, nil
}

func (m *Model) checkSignature() error {
	ins, outs := m.it.inputs(), m.it.outputs()
	if len(ins) != 1 || len(outs) != 1 {
		return fmt.Errorf("model has %d inputs and %d outputs, want 1 and 1", len(ins), len(outs))
	}
	m.in, m.out = ins[0], outs[0]
	for _, t := range []TensorInfo{m.in, m.out} {
		if err := checkTensor(t); err != nil {
			return err
		}
	}
	return nil
}

func checkTensor(t TensorInfo) error {
	if t.Type != Int8 {
		return fmt.Errorf("tensor %q is %s, want int8 (a full-integer model)", t.Name, t.Type)
	}
	if len(t.Shape) != 4 || t.Shape[0] != 1 {
		return fmt.Errorf("tensor %q has shape %v, want [1,H,W,C]", t.Name, t.Shape)
	}
	for _, d := range t.Shape {
		if d <= 0 {
			return fmt.Errorf("tensor %q has shape %v: dynamic or empty dimension", t.Name, t.Shape)
		}
	}
	if t.Bytes != t.Elements() {
		return fmt.Errorf("tensor %q holds %d bytes for shape %v", t.Name, t.Bytes, t.Shape)
	}
	if t.Scale <= 0 {
		return fmt.Errorf("tensor %q has no quantization scale", t.Name)
	}
	return nil
}

// Input describes the model's input tensor.
func (m *Model) Input() TensorInfo { return m.in }

// Output describes the model's output tensor.
func (m *Model) Output() TensorInfo { return m.out }

// Engine is the engine the model runs on.
func (m *Model) Engine() Kind { return m.engine }

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("accel: model closed")

// Run computes one output from one input. in and out must hold exactly the input's and output's
// element counts. ctx is checked before the invocation; an invocation, once started, runs to its
// end (TFLite cannot be interrupted mid-graph).
func (m *Model) Run(ctx context.Context, in, out []int8) error {
	if len(in) != m.in.Elements() || len(out) != m.out.Elements() {
		return fmt.Errorf("accel: run: buffers of %d and %d values, model wants %d and %d",
			len(in), len(out), m.in.Elements(), m.out.Elements())
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("accel: run: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.it == nil {
		return ErrClosed
	}
	if err := m.it.setInput(0, bytesOf(in)); err != nil {
		return fmt.Errorf("accel: run: set input: %w", err)
	}
	if err := m.it.invoke(); err != nil {
		return fmt.Errorf("accel: run: invoke: %w", err)
	}
	if err := m.it.output(0, bytesOf(out)); err != nil {
		return fmt.Errorf("accel: run: read output: %w", err)
	}
	return nil
}

// Close frees the interpreter. It is safe to call more than once.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.it != nil {
		m.it.close()
		m.it = nil
	}
}

// bytesOf views an int8 slice as bytes without copying; int8 and byte share size and layout.
func bytesOf(v []int8) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v))
}

// edgeTPUCustomOp is the custom operator edgetpu_compiler puts in the models it compiles.
const edgeTPUCustomOp = "edgetpu-custom-op"

// maxModelBytes bounds what is read of a model file to look for the Edge TPU's custom op.
const maxModelBytes = 256 << 20

// compiledForEdgeTPU reports whether a model file holds the Edge TPU's custom operator. It looks
// for the operator's name among the file's bytes (custom operator codes are stored as plain
// strings), which is enough to tell a compiled model from a plain one.
func compiledForEdgeTPU(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModelBytes+1))
	if err != nil {
		return false, err
	}
	if len(b) > maxModelBytes {
		return false, fmt.Errorf("model file larger than %d bytes", maxModelBytes)
	}
	return bytes.Contains(b, []byte(edgeTPUCustomOp)), nil
}
