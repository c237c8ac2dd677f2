// Package pipeline is the path from a received series to its outputs: preproc (load, classify),
// accel (tiled multi-scale inference), contour (post-processing, contours, RT Structure Set,
// contour JSON, preview). The daemon and `midline contour` both run it.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/preproc"
)

// Model is an opened, self-tested bundle ready to run.
type Model struct {
	Bundle *accel.Bundle
	Digest string
	Engine accel.Kind
	model  *accel.Model
	runner *accel.Runner
}

// OpenModel loads a bundle folder, opens its target for the engine, runs its self-test and
// prepares the tiled runner. A model whose self-test fails is never returned.
func OpenModel(ctx context.Context, dir string, o accel.Options) (*Model, error) {
	b, err := accel.LoadBundle(dir)
	if err != nil {
		return nil, err
	}
	digest, err := b.Digest()
	if err != nil {
		return nil, err
	}
	m, err := b.Open(o)
	if err != nil {
		return nil, err
	}
	if err := b.SelfTest(ctx, m); err != nil {
		m.Close()
		return nil, err
	}
	r, err := accel.NewRunner(m, b.Meta.Plan(), &preproc.Resamplers{})
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Model{Bundle: b, Digest: digest, Engine: m.Engine(), model: m, runner: r}, nil
}

// Close releases the interpreter.
func (m *Model) Close() { m.model.Close() }

// Profile is a destination's view of a result (destinations[].profile in the configuration).
type Profile struct {
	HoleMode       contour.HoleMode
	MaxPoints      int
	TransverseOnly bool
	Charset        string
	ROINames       map[string]string // sequence -> ROI name
}

// Settings are what the firmware adds to a run.
type Settings struct {
	DeviceID        string
	FirmwareVersion string
	FirmwareCommit  string
	ToleranceMM     float64
	MidlineMM       float64
	Profile         Profile
	// Revision counts results of the same series: 1, or more for a superseding result.
	Revision int
	// AnySequence runs the model whatever the series' classification says (commissioning).
	AnySequence bool
	// Classifier labels the series (the configuration's rules); nil means the defaults.
	Classifier *preproc.Classifier
	Now        func() time.Time
}

// Timings are the phases of one run.
type Timings struct {
	Load, Normalize, Infer, Reformat, Post, Trace, Write time.Duration
}

// Total is the sum of the phases.
func (t Timings) Total() time.Duration {
	return t.Load + t.Normalize + t.Infer + t.Reformat + t.Post + t.Trace + t.Write
}

// Result is a processed series.
type Result struct {
	Volume         *preproc.Volume
	Classification preproc.Classification
	Probability    *accel.Probability
	Segmentation   *contour.Segmentation
	Structure      *contour.StructureSet
	VolumesCM3     []float64
	Review         []bool
	Timings        Timings
	Tiles          accel.Stats
}

// Empty says no lesion was found.
func (r *Result) Empty() bool {
	for _, roi := range r.Structure.ROIs {
		if len(roi.Slices) > 0 {
			return false
		}
	}
	return true
}

var (
	// ErrWrongSequence: the series is not the sequence the model was trained on.
	ErrWrongSequence = errors.New("pipeline: series is not the model's sequence")
	// ErrNotTransverse: the destination takes transverse planes only.
	ErrNotTransverse = errors.New("pipeline: destination accepts transverse planes only")
)

// TransverseToleranceDeg is how far a slice normal may lean from the head-foot axis for a
// destination that takes transverse planes only.
const TransverseToleranceDeg = 1.0

// Run processes the instances of one series with m.
func Run(ctx context.Context, m *Model, paths []string, s Settings) (*Result, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	res := &Result{}
	t0 := time.Now()
	v, err := preproc.LoadSeries(ctx, paths, preproc.Options{})
	if err != nil {
		return nil, err
	}
	res.Volume = v
	res.Timings.Load = time.Since(t0)
	meta := m.Bundle.Meta
	cl := s.Classifier
	if cl == nil {
		if cl, err = preproc.NewClassifier(preproc.DefaultRules()); err != nil {
			return nil, err
		}
	}
	res.Classification = cl.Classify(v.Header.Acquisition)
	if !s.AnySequence && (res.Classification.Unfit || string(res.Classification.Label) != meta.Sequence) {
		return res, fmt.Errorf("%w: classified %s (%s); %s runs on %s", ErrWrongSequence,
			res.Classification.Label, res.Classification.Reason, meta.Name, meta.Sequence)
	}
	if s.Profile.TransverseOnly {
		if tilt := math.Acos(math.Min(1, math.Abs(v.Normal[2]))) * 180 / math.Pi; tilt > TransverseToleranceDeg {
			return res, fmt.Errorf("%w: slices lean %.1f degrees from transverse", ErrNotTransverse, tilt)
		}
	}
	p, err := accel.SegmentVolume(ctx, m.runner, meta.Normalization, v)
	if err != nil {
		return res, err
	}
	res.Probability = p
	res.Tiles = p.Stats
	res.Timings.Normalize, res.Timings.Infer, res.Timings.Reformat = p.Timings.Normalize, p.Timings.Infer, p.Timings.Reformat

	t1 := time.Now()
	seg, err := contour.Postprocess(&v.Geometry, p.P, contour.MidlineX(v), contour.Params{
		Threshold: meta.Threshold, MinComponentMM3: meta.MinComponent, MidlineMM: s.MidlineMM})
	if err != nil {
		return res, err
	}
	res.Segmentation = seg
	res.Timings.Post = time.Since(t1)

	t2 := time.Now()
	topt := contour.TraceOptions{ToleranceMM: s.ToleranceMM, MaxPoints: s.Profile.MaxPoints, Holes: s.Profile.HoleMode}
	gtvName := meta.ROI.Name
	if n := s.Profile.ROINames[meta.Sequence]; n != "" {
		gtvName = n
	}
	voxel := v.PixelSpacing[0] * v.PixelSpacing[1] * v.SliceSpacing / 1000
	var rois []contour.ROIData
	for i, mask := range []*contour.Mask{seg.GTV, seg.Review} {
		sl, err := contour.Trace(v, p.P, mask, meta.Threshold, topt)
		if err != nil {
			return res, err
		}
		roi := contour.ROIData{Number: i + 1, Name: gtvName, InterpretedType: meta.ROI.Type, Color: meta.ROI.Color, Slices: sl,
			Description: fmt.Sprintf("%s by %s %s, %s", meta.ROI.Type, meta.Name, meta.Version, "NOT REVIEWED")}
		if i == 1 {
			if len(sl) == 0 {
				continue
			}
			roi.Name = reviewName(gtvName)
			roi.InterpretedType = ""
			roi.Color = [3]uint8{255, 200, 0}
			roi.Description = "components away from the midline: review " + roi.Description
		}
		rois = append(rois, roi)
		res.VolumesCM3 = append(res.VolumesCM3, float64(mask.Count())*voxel)
		res.Review = append(res.Review, i == 1)
	}
	res.Timings.Trace = time.Since(t2)

	var sops []string
	sops = append(sops, v.SOPInstanceUIDs...)
	res.Structure = &contour.StructureSet{
		Source: v, ROIs: rois, Revision: max(1, s.Revision), Created: s.Now(), Holes: topt.Holes, Charset: s.Profile.Charset,
		UIDs: contour.DeriveUIDs(contour.UIDInputs{SourceSOPInstanceUIDs: sops, BundleSHA256: m.Digest,
			FirmwareVersion: s.FirmwareVersion, Config: outputConfig(s, topt)}),
		Prov: contour.Provenance{DeviceID: s.DeviceID, FirmwareVersion: s.FirmwareVersion, FirmwareCommit: s.FirmwareCommit,
			ModelName: meta.Name, ModelVersion: meta.Version, BundleSHA256: m.Digest, TFLiteVersion: accel.RuntimeVersion(),
			Engine: string(m.Engine), ClinicalUse: meta.ClinicalUse,
			Parameters: fmt.Sprintf("threshold %g; min_component_mm3 %g; scales_mm %v; tolerance_mm %g",
				meta.Threshold, meta.MinComponent, meta.ScalesMM, topt.ToleranceMM)},
	}
	return res, nil
}

// reviewName is the review ROI's name: the GTV name with a _REV suffix, within 16 characters.
func reviewName(gtv string) string {
	const suffix = "_REV"
	if len(gtv) > 16-len(suffix) {
		gtv = gtv[:16-len(suffix)]
	}
	return gtv + suffix
}

// outputConfig renders the settings that change the output, for the result's UIDs.
func outputConfig(s Settings, t contour.TraceOptions) string {
	return fmt.Sprintf("holes=%s;max_points=%d;tolerance=%g;charset=%s;roi_names=%v;midline=%g;revision=%d",
		t.Holes, t.MaxPoints, t.ToleranceMM, s.Profile.Charset, s.Profile.ROINames, s.MidlineMM, s.Revision)
}

// Files names the outputs WriteFiles writes.
type Files struct {
	RTStruct, Contours, Preview string
}

// WriteFiles writes rtstruct.dcm (unless the result is empty), contours.json and preview.png
// into dir, each crash-safely (temp file, fsync, rename).
func (r *Result) WriteFiles(dir, jobID string) (Files, error) {
	t0 := time.Now()
	defer func() { r.Timings.Write = time.Since(t0) }()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Files{}, err
	}
	var f Files
	if !r.Empty() {
		var b bytes.Buffer
		if err := contour.WriteRTStruct(&b, r.Structure); err != nil {
			return f, err
		}
		f.RTStruct = filepath.Join(dir, "rtstruct.dcm")
		if err := writeFile(f.RTStruct, b.Bytes()); err != nil {
			return f, err
		}
	}
	msg := r.Structure.Message(r.VolumesCM3, r.Review)
	msg.JobID = jobID
	js, err := msg.MarshalIndent()
	if err != nil {
		return f, err
	}
	f.Contours = filepath.Join(dir, "contours.json")
	if err := writeFile(f.Contours, js); err != nil {
		return f, err
	}
	var png bytes.Buffer
	in := contour.PreviewInput{Volume: r.Volume, Title: r.Structure.Prov.ModelName + " " + r.Structure.Prov.ModelVersion,
		Note: "AI DRAFT: " + r.Structure.Draft()}
	for _, roi := range r.Structure.ROIs {
		in.ROIs = append(in.ROIs, contour.PreviewROI{Name: roi.Name, Color: roi.Color, Slices: roi.Slices})
	}
	if err := contour.WritePreview(&png, in); err != nil {
		return f, err
	}
	f.Preview = filepath.Join(dir, "preview.png")
	return f, writeFile(f.Preview, png.Bytes())
}

// writeFile writes data crash-safely: a temp file in the same folder, fsync, rename, fsync of
// the folder.
func writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Summary is a one-line description of a result for logs and the CLI (no patient data).
func (r *Result) Summary() string {
	var parts []string
	for i, roi := range r.Structure.ROIs {
		parts = append(parts, fmt.Sprintf("%s %.2f cm3 on %d slices", roi.Name, r.VolumesCM3[i], len(roi.Slices)))
	}
	if len(parts) == 0 {
		return "no lesion found"
	}
	return strings.Join(parts, "; ")
}
