package main

import (
	_ "embed"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// Set at link time by the Makefile (-X main.version=... -X main.commit=...). A build without it
// (go build, go test) is <VERSION>-unknown: its release part is still the firmware's, which
// the models' runtime.min_firmware is held against.
var (
	version string
	commit  = "unknown"
)

// baseVersion is the release the tree is working towards; the Makefile reads the same file.
//
//go:embed VERSION
var baseVersion string

func init() {
	if version == "" {
		version = strings.TrimSpace(baseVersion) + "-unknown"
	}
}

// command is one subcommand; run gets the arguments after its name.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands lists every subcommand; each lives in its own file.
var commands = map[string]command{
	"version":     {"print firmware, Go and TFLite versions and the available engines", runVersion},
	"echo":        {"send a DICOM C-ECHO to HOST:PORT", runEcho},
	"send":        {"send DICOM files to HOST:PORT with C-STORE", runSend},
	"serve":       {"run the daemon: midline serve --config FILE", runServe},
	"conformance": {"print the DICOM Conformance Statement", runConformance},
	"board":       {"print the board's temperatures, fan, LED and watchdog state once", runBoard},
	"config":      {"check a configuration file: config check FILE", runConfig},
	"contour":     {"contour one series offline: rtstruct.dcm, contours.json, preview.png", runContour},
	"ota":         {"model updates: ota init|publish|recall|rotate|timestamp|serve|push|status", runOTA},
	"status":      {"print a running daemon's health: status [--config FILE | --url URL]", runStatus},
	"jobs":        {"list, show, rerun or resend a running daemon's jobs: jobs list|show|rerun|resend", runJobs},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "midline: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: midline <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
}
