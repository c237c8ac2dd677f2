package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	goruntime "runtime"

	"github.com/midline-rt/midline/accel"
)

// versionInfo is what `midline version` reports; --json prints it as is.
type versionInfo struct {
	Firmware string               `json:"firmware"`
	Commit   string               `json:"commit"`
	Go       string               `json:"go"`
	Platform string               `json:"platform"`
	TFLite   string               `json:"tflite"`
	Engines  []accel.EngineStatus `json:"engines"`
}

func currentVersion() versionInfo {
	return versionInfo{
		Firmware: version,
		Commit:   commit,
		Go:       goruntime.Version(),
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
		TFLite:   accel.RuntimeVersion(),
		Engines:  accel.Engines(),
	}
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline version [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	v := currentVersion()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintln(stderr, "midline version:", err)
			return 1
		}
		return 0
	}
	writeVersion(stdout, v)
	return 0
}

func writeVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "midline  %s (commit %s)\n", v.Firmware, v.Commit)
	fmt.Fprintf(w, "go       %s %s\n", v.Go, v.Platform)
	fmt.Fprintf(w, "tflite   %s\n", v.TFLite)
	for i, e := range v.Engines {
		label := ""
		if i == 0 {
			label = "engines"
		}
		state := "available"
		if !e.Available {
			state = "unavailable"
		}
		fmt.Fprintf(w, "%-8s %s: %s (%s)\n", label, e.Kind, state, e.Detail)
	}
}
