package accel

// This file is the whole cgo seam: the TFLite C library through go-tflite, plus the few C calls
// go-tflite lacks or gets wrong. Keep it thin; logic belongs in plain Go files.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <tensorflow/lite/c/c_api.h>
#include <tensorflow/lite/delegates/external/external_delegate.h>

// probe_library reports whether a shared library loads, and if not, dlerror's text.
static const char* probe_library(const char* name) {
	void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char* e = dlerror();
		return e != NULL ? e : "dlopen failed";
	}
	dlclose(h);
	return NULL;
}

// new_external_delegate builds the options in C: go-tflite's delegates/external passes Go
// pointers inside a Go struct to C, which Go 1.26's cgo checks reject at run time.
static TfLiteDelegate* new_external_delegate(const char* lib) {
	TfLiteExternalDelegateOptions o = TfLiteExternalDelegateOptionsDefault(lib);
	return TfLiteExternalDelegateCreate(&o);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	tflite "github.com/mattn/go-tflite"
)

// lib is the process's TFLite library.
var lib runtime = cRuntime{}

type cRuntime struct{}

func (cRuntime) version() string { return C.GoString(C.TfLiteVersion()) }

func (cRuntime) probe(library string) error {
	name := C.CString(library)
	defer C.free(unsafe.Pointer(name))
	if e := C.probe_library(name); e != nil {
		return errors.New(C.GoString(e))
	}
	return nil
}

func (cRuntime) open(path string, o Options) (interpreter, error) {
	model := tflite.NewModelFromFile(path)
	if model == nil {
		return nil, errors.New("TFLite could not read the model file")
	}
	opts := tflite.NewInterpreterOptions()
	if opts == nil {
		model.Delete()
		return nil, errors.New("TFLite could not create interpreter options")
	}
	defer opts.Delete()
	if o.Threads > 0 {
		opts.SetNumThread(o.Threads)
	}
	var d *externalDelegate
	if o.Engine == EdgeTPU {
		if d = newExternalDelegate(EdgeTPULibrary); d == nil {
			model.Delete()
			return nil, errors.New("TFLite could not create the Edge TPU delegate")
		}
		opts.AddDelegate(d)
	}
	it := tflite.NewInterpreter(model, opts)
	if it == nil {
		d.Delete()
		model.Delete()
		return nil, fmt.Errorf("TFLite could not build an interpreter for %s", o.Engine)
	}
	if s := it.AllocateTensors(); s != tflite.OK {
		it.Delete()
		d.Delete()
		model.Delete()
		return nil, errors.New("TFLite could not allocate tensors")
	}
	return &cInterpreter{it: it, model: model, delegate: d}, nil
}

type cInterpreter struct {
	it       *tflite.Interpreter
	model    *tflite.Model
	delegate *externalDelegate
}

func info(t *tflite.Tensor) TensorInfo {
	q := t.QuantizationParams()
	return TensorInfo{Name: t.Name(), Type: DType(t.Type()), Shape: t.Shape(), Bytes: int(t.ByteSize()),
		Scale: q.Scale, ZeroPoint: q.ZeroPoint}
}

func (c *cInterpreter) inputs() []TensorInfo {
	ts := make([]TensorInfo, c.it.GetInputTensorCount())
	for i := range ts {
		ts[i] = info(c.it.GetInputTensor(i))
	}
	return ts
}

func (c *cInterpreter) outputs() []TensorInfo {
	ts := make([]TensorInfo, c.it.GetOutputTensorCount())
	for i := range ts {
		ts[i] = info(c.it.GetOutputTensor(i))
	}
	return ts
}

// setInput and output copy exactly the tensor's byte size (go-tflite copies ByteSize bytes
// whatever the Go slice holds), so the length is checked here, next to the copy.
func (c *cInterpreter) setInput(i int, b []byte) error {
	t := c.it.GetInputTensor(i)
	if t == nil || int(t.ByteSize()) != len(b) {
		return fmt.Errorf("input %d: %d bytes do not fit the tensor", i, len(b))
	}
	if t.CopyFromBuffer(b) != tflite.OK {
		return fmt.Errorf("input %d: copy failed", i)
	}
	return nil
}

func (c *cInterpreter) output(i int, b []byte) error {
	t := c.it.GetOutputTensor(i)
	if t == nil || int(t.ByteSize()) != len(b) {
		return fmt.Errorf("output %d: %d bytes do not fit the tensor", i, len(b))
	}
	if t.CopyToBuffer(b) != tflite.OK {
		return fmt.Errorf("output %d: copy failed", i)
	}
	return nil
}

func (c *cInterpreter) invoke() error {
	if c.it.Invoke() != tflite.OK {
		return errors.New("TFLite invoke failed")
	}
	return nil
}

// close frees the interpreter before the delegate and the model it uses.
func (c *cInterpreter) close() {
	c.it.Delete()
	c.delegate.Delete()
	c.model.Delete()
}

// externalDelegate is a TFLite external delegate, handed to go-tflite through its Delegater
// interface.
// The library name stays allocated for the delegate's life, as its options point at it.
type externalDelegate struct {
	d    *C.TfLiteDelegate
	name *C.char
}

func newExternalDelegate(library string) *externalDelegate {
	name := C.CString(library)
	d := C.new_external_delegate(name)
	if d == nil {
		C.free(unsafe.Pointer(name))
		return nil
	}
	return &externalDelegate{d: d, name: name}
}

// Delete frees the delegate; a nil delegate is a no-op.
func (e *externalDelegate) Delete() {
	if e != nil {
		C.TfLiteExternalDelegateDelete(e.d)
		C.free(unsafe.Pointer(e.name))
	}
}

// Ptr is the TfLiteDelegate pointer for TfLiteInterpreterOptionsAddDelegate.
func (e *externalDelegate) Ptr() unsafe.Pointer { return unsafe.Pointer(e.d) }
