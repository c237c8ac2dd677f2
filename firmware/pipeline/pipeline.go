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
	"slices"
	"strings"
	"time"

	"github.com/midline-rt/midline/accel"
	"github.com/midline-rt/midline/contour"
	"github.com/midline-rt/midline/internal/atomicfile"
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

// Settings are what the firmware adds to a run.
type Settings struct {
	DeviceID        string
	FirmwareVersion string
	FirmwareCommit  string
	ToleranceMM     float64
	MidlineMM       float64
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

// Result is a processed series: everything up to the mask. What a destination receives is
// rendered from it per destination profile (Render).
type Result struct {
	Volume         *preproc.Volume
	Text           *contour.SourceText
	Classification preproc.Classification
	Probability    *accel.Probability
	Segmentation   *contour.Segmentation
	Timings        Timings
	Tiles          accel.Stats
	Created        time.Time

	model    *Model
	settings Settings
}

// Empty says no lesion was found.
func (r *Result) Empty() bool {
	return r.Segmentation.GTV.Count() == 0 && r.Segmentation.Review.Count() == 0
}

var (
	// ErrWrongSequence: the series is not the sequence the model was trained on.
	ErrWrongSequence = errors.New("pipeline: series is not the model's sequence")
	// ErrNotTransverse: the destination takes transverse planes only.
	ErrNotTransverse       = errors.New("pipeline: destination accepts transverse planes only")
	errSlicesNotTransverse = fmt.Errorf("%w: the series' slices are not transverse", ErrNotTransverse)
)

// TransverseToleranceDeg is how far a slice normal may lean from the head-foot axis for a
// destination that takes transverse planes only.
const TransverseToleranceDeg = 1.0

// Run processes the instances of one series with m: load, classify, infer, post-process.
func Run(ctx context.Context, m *Model, paths []string, s Settings) (*Result, error) {
	if s.Now == nil {
		s.Now = time.Now
	}
	res := &Result{model: m, settings: s}
	t0 := time.Now()
	v, err := preproc.LoadSeries(ctx, paths, preproc.Options{})
	if err != nil {
		return nil, err
	}
	res.Volume = v
	if res.Text, err = contour.ReadSourceText(paths[0]); err != nil {
		return nil, err
	}
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
	p, err := accel.SegmentVolume(ctx, m.runner, meta.Normalization, v)
	if err != nil {
		return res, err
	}
	res.Probability = p
	res.Tiles = p.Stats
	// A field of view that cuts the head is outside what the models were trained on: said in
	// the result's flags, which its event and job carry (docs/contracts.md, Classification).
	if f := preproc.FlagFieldOfViewCut(preproc.FieldOfViewCuts(v, p.Normalization)); f != "" {
		res.Classification.Flags = append(slices.Clip(res.Classification.Flags), f)
	}
	res.Timings.Normalize, res.Timings.Infer, res.Timings.Reformat = p.Timings.Normalize, p.Timings.Infer, p.Timings.Reformat

	t1 := time.Now()
	res.Segmentation, err = contour.Postprocess(&v.Geometry, p, contour.MidlineX(v, p.Normalization.Threshold), contour.Params{
		Threshold: meta.Threshold, MinComponentMM3: meta.MinComponent, MidlineMM: s.MidlineMM})
	if err != nil {
		return res, err
	}
	res.Timings.Post = time.Since(t1)
	res.Created = s.Now()
	return res, nil
}

// Rendered is a result as one destination receives it.
type Rendered struct {
	Structure  *contour.StructureSet
	VolumesCM3 []float64 // per ROI, from the mask
	Review     []bool    // per ROI: the review ROI of components away from the midline
}

// Transverse says whether the series' slices are transverse within TransverseToleranceDeg.
func (r *Result) Transverse() bool {
	tilt := math.Acos(math.Min(1, math.Abs(r.Volume.Normal[2]))) * 180 / math.Pi
	return tilt <= TransverseToleranceDeg
}

// Render traces the contours and builds the structure set for one destination profile
// (revision 1 for a series' first result, more for one that supersedes it).
func (r *Result) Render(pr contour.Profile, revision int) (*Rendered, error) {
	if pr.TransverseOnly && !r.Transverse() {
		return nil, errSlicesNotTransverse
	}
	t0 := time.Now()
	defer func() { r.Timings.Trace += time.Since(t0) }()
	v, meta, s := r.Volume, r.model.Bundle.Meta, r.settings
	topt := contour.TraceOptions{ToleranceMM: s.ToleranceMM, MaxPoints: pr.MaxPoints, Holes: pr.HoleMode}
	gtvName := meta.ROI.Name
	if n := pr.ROINames[meta.Sequence]; n != "" {
		gtvName = n
	}
	voxel := v.PixelSpacing[0] * v.PixelSpacing[1] * v.SliceSpacing / 1000
	out := &Rendered{}
	var rois []contour.ROIData
	for i, mask := range []*contour.Mask{r.Segmentation.GTV, r.Segmentation.Review} {
		sl, err := contour.Trace(v, r.Probability, mask, meta.Threshold, topt)
		if err != nil {
			return nil, err
		}
		roi := contour.ROIData{Number: i + 1, Name: gtvName, InterpretedType: meta.ROI.Type, Color: meta.ROI.Color, Slices: sl,
			Description: fmt.Sprintf("%s by %s %s, %s", meta.ROI.Type, meta.Name, meta.Version, contour.DraftWording(meta.ClinicalUse))}
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
		out.VolumesCM3 = append(out.VolumesCM3, float64(mask.Count())*voxel)
		out.Review = append(out.Review, i == 1)
	}
	m := r.model
	out.Structure = &contour.StructureSet{
		Source: v, ROIs: rois, Revision: max(1, revision), Created: r.Created, Holes: topt.Holes, Charset: pr.Charset, Text: r.Text,
		UIDs: contour.DeriveUIDs(contour.UIDInputs{SourceSOPInstanceUIDs: v.SOPInstanceUIDs, BundleSHA256: m.Digest,
			FirmwareVersion: s.FirmwareVersion, Config: outputConfig(s, pr, topt, revision)}),
		Prov: contour.Provenance{DeviceID: s.DeviceID, FirmwareVersion: s.FirmwareVersion, FirmwareCommit: s.FirmwareCommit,
			ModelName: meta.Name, ModelVersion: meta.Version, BundleSHA256: m.Digest, TFLiteVersion: accel.RuntimeVersion(),
			Engine: string(m.Engine), ClinicalUse: meta.ClinicalUse,
			Parameters: fmt.Sprintf("threshold %g; min_component_mm3 %g; scales_mm %v; tolerance_mm %g",
				meta.Threshold, meta.MinComponent, meta.ScalesMM, s.ToleranceMM)},
	}
	return out, nil
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
func outputConfig(s Settings, pr contour.Profile, t contour.TraceOptions, revision int) string {
	return fmt.Sprintf("holes=%s;max_points=%d;tolerance=%g;charset=%s;roi_names=%v;midline=%g;revision=%d",
		t.Holes, t.MaxPoints, t.ToleranceMM, pr.Charset, pr.ROINames, s.MidlineMM, revision)
}

// Files names the outputs WriteFiles writes.
type Files struct {
	RTStruct, Contours, Preview string
}

// WriteFiles renders the result for profile pr and writes rtstruct.dcm (unless no lesion was
// found), contours.json and preview.png into dir, each crash-safely.
func (r *Result) WriteFiles(dir, jobID string, pr contour.Profile, revision int) (*Rendered, Files, error) {
	var f Files
	rd, err := r.Render(pr, revision)
	if err != nil {
		return nil, f, err
	}
	t0 := time.Now()
	defer func() { r.Timings.Write += time.Since(t0) }()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return rd, f, err
	}
	if !r.Empty() {
		var b bytes.Buffer
		if err := contour.WriteRTStruct(&b, rd.Structure); err != nil {
			return rd, f, err
		}
		f.RTStruct = filepath.Join(dir, "rtstruct.dcm")
		if err := atomicfile.Write(f.RTStruct, b.Bytes()); err != nil {
			return rd, f, err
		}
	}
	msg := rd.Structure.Message(rd.VolumesCM3, rd.Review)
	msg.JobID = jobID
	js, err := msg.MarshalIndent()
	if err != nil {
		return rd, f, err
	}
	f.Contours = filepath.Join(dir, "contours.json")
	if err := atomicfile.Write(f.Contours, js); err != nil {
		return rd, f, err
	}
	var png bytes.Buffer
	st := rd.Structure
	in := contour.PreviewInput{Volume: r.Volume, Title: st.Prov.ModelName + " " + st.Prov.ModelVersion, Note: "AI DRAFT: " + st.Draft()}
	for _, roi := range st.ROIs {
		in.ROIs = append(in.ROIs, contour.PreviewROI{Name: roi.Name, Color: roi.Color, Slices: roi.Slices})
	}
	if err := contour.WritePreview(&png, in); err != nil {
		return rd, f, err
	}
	f.Preview = filepath.Join(dir, "preview.png")
	return rd, f, atomicfile.Write(f.Preview, png.Bytes())
}

// Summary is a one-line description of a rendered result for logs and the CLI (no patient
// data).
func (rd *Rendered) Summary() string {
	var parts []string
	for i, roi := range rd.Structure.ROIs {
		parts = append(parts, fmt.Sprintf("%s %.2f cm3 on %d slices", roi.Name, rd.VolumesCM3[i], len(roi.Slices)))
	}
	if len(parts) == 0 {
		return "no lesion found"
	}
	return strings.Join(parts, "; ")
}
