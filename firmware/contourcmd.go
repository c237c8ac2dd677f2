package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/firmware/pipeline"
)

// runContour is the offline path teams use for QA and commissioning: one series folder in,
// rtstruct.dcm, contours.json and preview.png out, with timings.
func runContour(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("contour", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model bundle folder (e.g. models/dmg-t2)")
	in := fs.String("in", "", "folder holding one series' DICOM files")
	out := fs.String("out", "", "output folder")
	engine := fs.String("engine", "cpu", "engine: cpu or edgetpu")
	threads := fs.Int("threads", 1, "CPU threads for TFLite")
	holes := fs.String("holes", string(contour.HolesSeparate), "hole mode: separate, xor or keyhole")
	charset := fs.String("charset", contour.CharsetSource, "character set of the structure set: empty for the source's own, or ISO_IR 192, ISO_IR 100, ISO_IR 6")
	tol := fs.Float64("tolerance", contour.DefaultToleranceMM, "simplification tolerance in mm (at most 0.25)")
	anySeq := fs.Bool("any-sequence", false, "run even if the series is classified as another sequence")
	device := fs.String("device-id", "midline-offline", "DeviceSerialNumber written into the result")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: midline contour --model DIR --in SERIES_DIR --out OUT_DIR [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *model == "" || *in == "" || *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	paths, _, err := collectFiles([]string{*in})
	if err != nil || len(paths) == 0 {
		fmt.Fprintf(stderr, "midline contour: no DICOM files in %s %v\n", *in, errOrEmpty(err))
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	t0 := time.Now()
	m, err := pipeline.OpenModel(ctx, *model, accel.Options{Engine: accel.Kind(*engine), Threads: *threads})
	if err != nil {
		fmt.Fprintf(stderr, "midline contour: %v\n", err)
		return 1
	}
	defer m.Close()
	open := time.Since(t0)
	res, err := pipeline.Run(ctx, m, paths, pipeline.Settings{
		DeviceID: *device, FirmwareVersion: version, FirmwareCommit: commit, ToleranceMM: *tol, AnySequence: *anySeq,
	})
	if err != nil {
		fmt.Fprintf(stderr, "midline contour: %v\n", err)
		if errors.Is(err, pipeline.ErrWrongSequence) {
			fmt.Fprintln(stderr, "midline contour: --any-sequence runs it anyway")
		}
		return 1
	}
	rd, files, err := res.WriteFiles(*out, "offline", contour.Profile{HoleMode: contour.HoleMode(*holes), Charset: *charset}, 1)
	if err != nil {
		fmt.Fprintf(stderr, "midline contour: %v\n", err)
		return 1
	}
	v := res.Volume
	fmt.Fprintf(stdout, "series: %d slices of %dx%d, %.2fx%.2f mm, %.2f mm apart; classified %s (%s)\n",
		v.Slices(), v.Rows, v.Cols, v.PixelSpacing[0], v.PixelSpacing[1], v.SliceSpacing,
		res.Classification.Label, res.Classification.Reason)
	for _, f := range res.Classification.Flags {
		fmt.Fprintf(stdout, "flag: %s\n", f)
	}
	fmt.Fprintf(stdout, "model: %s %s on %s (bundle sha256 %s), reformatted: %v\n",
		m.Bundle.Meta.Name, m.Bundle.Meta.Version, m.Engine, m.Digest[:16], res.Probability.Reformatted)
	fmt.Fprintf(stdout, "result: %s\n", rd.Summary())
	t := res.Timings
	fmt.Fprintf(stdout, "timings: open+selftest %v, load %v, normalize %v, infer %v (%d tiles run, %d skipped), reformat %v, post %v, trace %v, write %v, total %v\n",
		ms(open), ms(t.Load), ms(t.Normalize), ms(t.Infer), res.Tiles.TilesRun, res.Tiles.TilesSkipped,
		ms(t.Reformat), ms(t.Post), ms(t.Trace), ms(t.Write), ms(open+t.Total()))
	if files.RTStruct != "" {
		fmt.Fprintf(stdout, "wrote %s\n", files.RTStruct)
	} else {
		fmt.Fprintln(stdout, "no lesion found: no structure set written")
	}
	fmt.Fprintf(stdout, "wrote %s\nwrote %s\n", files.Contours, files.Preview)
	return 0
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func errOrEmpty(err error) string {
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return ""
}
