package preproc_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/midline-rt/midline/preproc"
)

// The path of a series through preproc, as the runner takes it: load the event's files,
// classify, orient, fit the normalisation on the whole series, then per slice normalise,
// resample to a model scale, (run the model), map back to the native grid and slice.
func Example() {
	paths, _ := filepath.Glob("../testdata/phantom/seed4/T2/*.dcm")
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := preproc.NewClassifier(preproc.DefaultRules())
	cl := c.Classify(v.Header.Acquisition)
	fmt.Println(cl.Label, cl.Flags)

	o, err := preproc.Orient(v.Geometry, preproc.DefaultMaxTiltDeg)
	if err != nil {
		fmt.Println(err) // a sagittal 3D series goes through preproc.NewReformat instead
		return
	}
	nm, err := preproc.FitNormalization(v.Pixels, 0.5, 99.5)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("threshold %.3f, clip [%g, %g], pad %.4f\n", nm.Threshold, nm.Low, nm.High, nm.PadValue())

	var rs preproc.Resamplers
	g := o.Canonical
	k := 7
	slice := preproc.Plane{Rows: g.Rows, Cols: g.Cols, Pix: make([]float32, g.Rows*g.Cols)}
	o.ToCanonical(slice.Pix, v.Slice(o.NativeSlice(k)))
	nm.Apply(slice.Pix, slice.Pix)
	z := rs.ToScale(slice, g.PixelSpacing, 2.0)
	fmt.Printf("slice %d: %dx%d at %v mm -> %dx%d at 2 mm\n", k, g.Rows, g.Cols, g.PixelSpacing, z.Rows, z.Cols)

	prob := z // a model's probabilities at 2 mm would go here
	back := rs.ToNative(prob, g.Rows, g.Cols)
	native := make([]float32, v.Rows*v.Cols)
	o.FromCanonical(native, back.Pix)
	fmt.Println("on native slice", o.NativeSlice(k), "of", v.SOPInstanceUIDs[o.NativeSlice(k)][:12]+"...")
	// Output:
	// T2 [no 3D distortion correction (ImageType ND or DIS2D)]
	// threshold 616.734, clip [627, 2435], pad -1.3759
	// slice 7: 160x160 at [1.25 1.25] mm -> 100x100 at 2 mm
	// on native slice 7 of 2.25.1890779...
}
