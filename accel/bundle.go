package accel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/midline-rt/midline/internal/strictjson"
)

// BundleMeta is a bundle's model.json (DESIGN.md, "Model bundle"). Unknown keys are refused so
// a misspelt key is an error, not a silent default; `metrics` is free-form.
type BundleMeta struct {
	Name          string            `json:"name"`
	Version       string            `json:"version"`
	Sequence      string            `json:"sequence"`
	ClinicalUse   bool              `json:"clinical_use"`
	ROI           ROI               `json:"roi"`
	Targets       map[string]Target `json:"targets"`
	Checks        map[string]string `json:"checks"`
	Input         InputSpec         `json:"input"`
	ScalesMM      []float64         `json:"scales_mm"`
	ScaleWeights  []float64         `json:"scale_weights"`
	TileOverlap   float64           `json:"tile_overlap"`
	Blend         string            `json:"blend"`
	RoiGate       float64           `json:"roi_gate"`
	Normalization Normalization     `json:"normalization"`
	Threshold     float64           `json:"threshold"`
	MinComponent  float64           `json:"min_component_mm3"`
	Metrics       json.RawMessage   `json:"metrics"`
	Runtime       struct {
		MinFirmware string `json:"min_firmware"`
	} `json:"runtime"`
}

// ROI names and colours the structure a model draws.
type ROI struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Color [3]uint8 `json:"color"`
}

// Target is one engine's model file and its self-test.
type Target struct {
	File     string `json:"file"`
	Selftest struct {
		Input        string `json:"input"`
		OutputSHA256 string `json:"output_sha256"`
	} `json:"selftest"`
}

// InputSpec is the model's input tile.
type InputSpec struct {
	Size          int `json:"size"`
	Channels      int `json:"channels"`
	ContextSlices int `json:"context_slices"`
	// ContextMM is the distance between the channels in mm; 0 (or absent): adjacent slices.
	ContextMM float64 `json:"context_mm,omitempty"`
}

// Normalization names the series normalisation (docs/contracts.md).
type Normalization struct {
	Method string  `json:"method"`
	PLow   float64 `json:"p_low"`
	PHigh  float64 `json:"p_high"`
}

// Bundle is a model bundle folder, its metadata checked.
type Bundle struct {
	Dir  string
	Meta BundleMeta
}

const maxModelJSON = 1 << 20

var (
	semver   = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	fileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// LoadBundle reads and checks dir/model.json. The model files are opened later, per engine.
func LoadBundle(dir string) (*Bundle, error) {
	f, err := os.Open(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("accel: bundle %s: %w", dir, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxModelJSON+1))
	if err != nil {
		return nil, fmt.Errorf("accel: bundle %s: read model.json: %w", dir, err)
	}
	if len(raw) > maxModelJSON {
		return nil, fmt.Errorf("accel: bundle %s: model.json larger than %d bytes", dir, maxModelJSON)
	}
	meta, err := ParseBundleMeta(raw)
	if err != nil {
		return nil, fmt.Errorf("accel: bundle %s: %w", dir, err)
	}
	return &Bundle{Dir: dir, Meta: meta}, nil
}

// ParseBundleMeta decodes and checks model.json bytes.
func ParseBundleMeta(raw []byte) (BundleMeta, error) {
	var m BundleMeta
	if err := strictjson.Decode(raw, &m); err != nil {
		return m, fmt.Errorf("model.json: %w", err)
	}
	return m, m.validate()
}

func (m BundleMeta) validate() error {
	var errs []error
	check := func(ok bool, format string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	check(m.Name != "", "name is empty")
	check(semver.MatchString(m.Version), "version %q is not a semantic version", m.Version)
	check(slices.Contains([]string{"T2", "FLAIR", "T1C"}, m.Sequence), "sequence %q is not T2, FLAIR or T1C", m.Sequence)
	check(m.ROI.Name != "" && len(m.ROI.Name) <= 16, "roi.name %q must have 1 to 16 characters", m.ROI.Name)
	check(m.ROI.Type != "", "roi.type is empty")
	check(len(m.Targets) > 0, "no targets")
	for kind, t := range m.Targets {
		_, err := ParseKind(kind)
		check(err == nil, "target %q is not an engine", kind)
		check(fileName.MatchString(t.File), "target %s: file %q is not a plain file name", kind, t.File)
		check(fileName.MatchString(t.Selftest.Input), "target %s: self-test input %q is not a plain file name", kind, t.Selftest.Input)
		_, herr := hex.DecodeString(t.Selftest.OutputSHA256)
		check(herr == nil && len(t.Selftest.OutputSHA256) == 64, "target %s: output_sha256 is not a sha256", kind)
	}
	check(m.Input.ContextSlices >= 0 && m.Input.ContextSlices <= MaxContextSlices, "input.context_slices %d not in [0, %d]", m.Input.ContextSlices, MaxContextSlices)
	check(m.Input.Channels == 2*m.Input.ContextSlices+1, "input.channels %d: a model with %d context slices takes %d", m.Input.Channels, m.Input.ContextSlices, 2*m.Input.ContextSlices+1)
	check(m.Blend == "gaussian", "blend %q: only gaussian is supported", m.Blend)
	n := m.Normalization
	check(n.Method == "percentile-zscore", "normalization.method %q is not percentile-zscore", n.Method)
	check(n.PLow >= 0 && n.PLow < n.PHigh && n.PHigh <= 100, "normalization percentiles %v and %v", n.PLow, n.PHigh)
	check(m.Threshold > 0 && m.Threshold < 1, "threshold %v not in (0, 1)", m.Threshold)
	check(m.MinComponent >= 0, "min_component_mm3 %v is negative", m.MinComponent)
	check(semver.MatchString(m.Runtime.MinFirmware), "runtime.min_firmware %q is not a semantic version", m.Runtime.MinFirmware)
	if err := m.Plan().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Plan is the bundle's tiled inference plan.
func (m BundleMeta) Plan() Plan {
	return Plan{Size: m.Input.Size, ScalesMM: m.ScalesMM, ScaleWeights: m.ScaleWeights,
		Overlap: m.TileOverlap, RoiGate: m.RoiGate, Context: m.Input.ContextSlices,
		ContextMM: m.Input.ContextMM}
}

// Open loads the bundle's model for an engine and checks its tensors against model.json.
func (b *Bundle) Open(o Options) (*Model, error) {
	if o.Engine == "" {
		o.Engine = CPU
	}
	t, ok := b.Meta.Targets[string(o.Engine)]
	if !ok {
		return nil, fmt.Errorf("accel: bundle %s %s has no %s target", b.Meta.Name, b.Meta.Version, o.Engine)
	}
	m, err := Open(filepath.Join(b.Dir, t.File), o)
	if err != nil {
		return nil, err
	}
	want := []int{1, b.Meta.Input.Size, b.Meta.Input.Size, b.Meta.Input.Channels}
	for _, ti := range []TensorInfo{m.Input(), m.Output()} {
		if !slices.Equal(ti.Shape[:3], want[:3]) {
			m.Close()
			return nil, fmt.Errorf("accel: bundle %s: tensor %q has shape %v, model.json says %v", b.Meta.Name, ti.Name, ti.Shape, want)
		}
	}
	if m.Input().Shape[3] != b.Meta.Input.Channels || m.Output().Shape[3] != 1 {
		m.Close()
		return nil, fmt.Errorf("accel: bundle %s: channels %d in, %d out; model.json says %d in, 1 out",
			b.Meta.Name, m.Input().Shape[3], m.Output().Shape[3], b.Meta.Input.Channels)
	}
	return m, nil
}

// ErrSelfTest is returned when a model's self-test output differs from the recorded hash.
var ErrSelfTest = errors.New("self-test output differs")

// SelfTest runs the target's recorded input through m and compares the output's sha256.
func (b *Bundle) SelfTest(ctx context.Context, m *Model) error {
	t := b.Meta.Targets[string(m.Engine())]
	in, err := readExactly(filepath.Join(b.Dir, t.Selftest.Input), m.Input().Elements())
	if err != nil {
		return fmt.Errorf("accel: bundle %s self-test: %w", b.Meta.Name, err)
	}
	out := make([]int8, m.Output().Elements())
	if err := m.Run(ctx, in, out); err != nil {
		return fmt.Errorf("accel: bundle %s self-test: %w", b.Meta.Name, err)
	}
	sum := sha256.Sum256(bytesOf(out))
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, t.Selftest.OutputSHA256) {
		return fmt.Errorf("accel: bundle %s %s on %s: %w (sha256 %s, recorded %s)", b.Meta.Name,
			b.Meta.Version, m.Engine(), ErrSelfTest, got, t.Selftest.OutputSHA256)
	}
	return nil
}

// readExactly reads a file that must hold exactly n bytes, never more into memory.
func readExactly(path string, n int) ([]int8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]int8, n)
	b := bytesOf(buf)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: want %d bytes: %w", path, n, err)
	}
	if k, _ := f.Read(make([]byte, 1)); k != 0 {
		return nil, fmt.Errorf("%s: longer than %d bytes", path, n)
	}
	return buf, nil
}

// Digest is the bundle's sha256 (docs/contracts.md, Bundle digest): over its regular files in
// name order, the lines "<name> <sha256 of the file>\n". It names the exact weights and
// settings that made a result.
func (b *Bundle) Digest() (string, error) {
	entries, err := os.ReadDir(b.Dir)
	if err != nil {
		return "", fmt.Errorf("accel: bundle digest: %w", err)
	}
	h := sha256.New()
	for _, e := range entries { // os.ReadDir sorts by name
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(b.Dir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("accel: bundle digest: %w", err)
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("accel: bundle digest: %s: %w", e.Name(), err)
		}
		fmt.Fprintf(h, "%s %x\n", e.Name(), fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
