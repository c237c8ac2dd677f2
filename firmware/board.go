package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/midline-rt/midline/board"
)

// runBoard prints the board's readings once (`midline board`). Until the daemon's config file
// exists (issue 7) the profile comes from a flag; the board is opened read-only, so a running
// daemon keeps its fan, LED and watchdog.
func runBoard(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("board", flag.ContinueOnError)
	fs.SetOutput(stderr)
	profile := fs.String("profile", "generic-linux", "board profile: sim, generic-linux, coral-devboard or jetson-orin-nano")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline board [--profile NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := board.Config{Profile: *profile}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "midline board:", err)
		return 2
	}
	if err := board.Report(ctx, stdout, cfg, board.Options{}); err != nil {
		fmt.Fprintln(stderr, "midline board:", err)
		return 1
	}
	return 0
}
