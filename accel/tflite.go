package accel

// This file is the whole cgo seam: the TFLite C library through go-tflite, plus the few C calls
// go-tflite lacks or gets wrong. Keep it thin; logic belongs in plain Go files.

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <tensorflow/lite/c/c_api.h>

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

// An Edge TPU delegate made through the library's TFLite delegate-plugin entry points. TFLite's
// own TfLiteExternalDelegateCreate does the same, but when the plugin returns no delegate (no
// device) the interpreter it is given to crashes; here that is an error with the plugin's text.
typedef TfLiteDelegate* (*plugin_create_fn)(char**, char**, size_t, void (*)(const char*));
typedef void (*plugin_destroy_fn)(TfLiteDelegate*);

typedef struct {
	void* handle;
	TfLiteDelegate* delegate;
	plugin_destroy_fn destroy;
	char error[512];
} plugin_delegate;

static __thread plugin_delegate* plugin_reporting;

static void plugin_report(const char* msg) {
	if (plugin_reporting != NULL && msg != NULL) {
		snprintf(plugin_reporting->error, sizeof plugin_reporting->error, "%s", msg);
	}
}

// plugin_open fills p; on failure p->delegate is NULL and p->error says why.
static void plugin_open(const char* lib, plugin_delegate* p) {
	p->handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (p->handle == NULL) {
		const char* e = dlerror();
		snprintf(p->error, sizeof p->error, "%s", e != NULL ? e : "dlopen failed");
		return;
	}
	plugin_create_fn create = (plugin_create_fn)dlsym(p->handle, "tflite_plugin_create_delegate");
	p->destroy = (plugin_destroy_fn)dlsym(p->handle, "tflite_plugin_destroy_delegate");
	if (create == NULL || p->destroy == NULL) {
		snprintf(p->error, sizeof p->error, "%s has no TFLite delegate plugin entry points", lib);
		return;
	}
	plugin_reporting = p;
	p->delegate = create(NULL, NULL, 0, plugin_report);
	plugin_reporting = NULL;
	if (p->delegate == NULL && p->error[0] == 0) {
		snprintf(p->error, sizeof p->error, "%s created no delegate (no Edge TPU device?)", lib);
	}
}

static void plugin_close(plugin_delegate* p) {
	if (p->delegate != NULL) {
		p->destroy(p->delegate);
	}
	if (p->handle != NULL) {
		dlclose(p->handle);
	}
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
	var d *pluginDelegate
	if o.Engine == EdgeTPU {
		var err error
		if d, err = openPlugin(o.edgeTPULibrary()); err != nil {
			model.Delete()
			return nil, fmt.Errorf("Edge TPU delegate: %w", err)
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
	delegate *pluginDelegate
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

// pluginDelegate is an Edge TPU delegate from the library's plugin entry points, handed to
// go-tflite through its Delegater interface. Its C state is allocated in C, so no Go pointer
// crosses into C.
type pluginDelegate struct{ p *C.plugin_delegate }

func openPlugin(library string) (*pluginDelegate, error) {
	name := C.CString(library)
	defer C.free(unsafe.Pointer(name))
	p := (*C.plugin_delegate)(C.calloc(1, C.sizeof_plugin_delegate))
	C.plugin_open(name, p)
	if p.delegate == nil {
		err := errors.New(C.GoString(&p.error[0]))
		C.plugin_close(p)
		C.free(unsafe.Pointer(p))
		return nil, err
	}
	return &pluginDelegate{p: p}, nil
}

// Delete frees the delegate and unloads the library; a nil delegate is a no-op.
func (d *pluginDelegate) Delete() {
	if d != nil {
		C.plugin_close(d.p)
		C.free(unsafe.Pointer(d.p))
	}
}

// Ptr is the TfLiteDelegate pointer for TfLiteInterpreterOptionsAddDelegate.
func (d *pluginDelegate) Ptr() unsafe.Pointer { return unsafe.Pointer(d.p.delegate) }
