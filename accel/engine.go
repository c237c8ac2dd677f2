package accel

import (
	"errors"
	"fmt"
)

// Kind names an inference engine, as the config key engine.kind does.
type Kind string

// The engines Midline knows. A GPU engine for Jetson does not exist yet; there the CPU is used.
const (
	CPU     Kind = "cpu"
	EdgeTPU Kind = "edgetpu"
)

// EdgeTPULibrary is the Edge TPU runtime library, loaded at run time so that the firmware has no
// link-time dependency on it.
const EdgeTPULibrary = "libedgetpu.so.1"

// ErrUnavailable is returned when an engine cannot run on this machine (no accelerator library,
// no device).
var ErrUnavailable = errors.New("engine unavailable")

// ParseKind checks an engine name from configuration.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case CPU, EdgeTPU:
		return k, nil
	}
	return "", fmt.Errorf("accel: unknown engine kind %q (want %q or %q)", s, CPU, EdgeTPU)
}

// EngineStatus says whether an engine can run here and, if not, why.
type EngineStatus struct {
	Kind      Kind   `json:"kind"`
	Available bool   `json:"available"`
	Detail    string `json:"detail"` // what backs it, or why it is unavailable
}

// RuntimeVersion is the version string of the TFLite C library the binary runs with, as the
// library itself reports it (TfLiteVersion).
func RuntimeVersion() string { return lib.version() }

// Engines reports every engine and whether it can run on this machine. The CPU engine is always
// available once the binary runs (it links TFLite); the Edge TPU engine only when its library
// loads.
func Engines() []EngineStatus { return engines(lib) }

func engines(r runtime) []EngineStatus {
	cpu := EngineStatus{Kind: CPU, Available: true, Detail: "TFLite " + r.version() + " builtin kernels"}
	tpu := EngineStatus{Kind: EdgeTPU}
	if err := r.probe(EdgeTPULibrary); err != nil {
		tpu.Detail = err.Error()
	} else {
		tpu.Available, tpu.Detail = true, EdgeTPULibrary+" loaded"
	}
	return []EngineStatus{cpu, tpu}
}
