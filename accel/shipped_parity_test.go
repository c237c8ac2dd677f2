package accel

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/midline-rt/midline/preproc"
)

// tileRecorder passes tiles to a model and keeps the sha256 of each raw int8 input and output.
type tileRecorder struct {
	TileModel
	tiles [][2]string
}

func (r *tileRecorder) Run(ctx context.Context, in, out []int8) error {
	if err := r.TileModel.Run(ctx, in, out); err != nil {
		return err
	}
	a, b := sha256.Sum256(bytesOf(in)), sha256.Sum256(bytesOf(out))
	r.tiles = append(r.tiles, [2]string{hex.EncodeToString(a[:]), hex.EncodeToString(b[:])})
	return nil
}

// TestShippedModelParity holds each shipped model, on the committed phantom study, to the model
// toolchain's Python pipeline (testdata/phantom/seed4/reference.json and {SEQ}.prob.f32.gz, made
// by `python -m midline_model.seed4_reference`, which runs TensorFlow's TFLite interpreter with
// builtin kernels on one thread), with the firmware's two threads: the same tiles in the same
// order, each tile's raw int8 input and output byte-identical, and the probability volume within one quantisation step of the
// box's byte-per-voxel volume everywhere.
func TestShippedModelParity(t *testing.T) {
	study := filepath.Join("..", "testdata", "phantom", "seed4")
	raw, err := os.ReadFile(filepath.Join(study, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []string{"T2", "FLAIR", "T1C"} {
		t.Run(seq, func(t *testing.T) {
			var want struct {
				Model       string
				Prob        string
				TilesSHA256 [][2]string `json:"tiles_sha256"`
			}
			if err := json.Unmarshal(ref[seq], &want); err != nil || len(want.TilesSHA256) == 0 {
				t.Fatalf("reference.json has no tiles for %s (%v): regenerate it", seq, err)
			}
			checkShippedParity(t, seq, study, want.Model, want.Prob, want.TilesSHA256)
		})
	}
}

func checkShippedParity(t *testing.T, seq, study, model, probFile string, tiles [][2]string) {
	b, err := LoadBundle(filepath.Join("..", "models", "dmg-"+strings.ToLower(seq)))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Meta.Name + " " + b.Meta.Version; got != model {
		t.Fatalf("reference.json was made with %s, the shipped bundle is %s: regenerate it", model, got)
	}
	m, err := b.Open(Options{Threads: 2}) // the box's default; the bytes do not depend on it
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	paths, err := filepath.Glob(filepath.Join(study, seq, "*.dcm"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s series: %v", seq, err)
	}
	v, err := preproc.LoadSeries(context.Background(), paths, preproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &tileRecorder{TileModel: m}
	r, err := NewRunner(rec, b.Meta.Plan(), &preproc.Resamplers{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := SegmentVolume(context.Background(), r, b.Meta.Normalization, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.tiles) != len(tiles) {
		t.Errorf("Go ran %d tiles, Python %d", len(rec.tiles), len(tiles))
	}
	inputs, outputs := 0, 0
	for i := range min(len(rec.tiles), len(tiles)) {
		if rec.tiles[i][0] != tiles[i][0] {
			inputs++
		} else if rec.tiles[i][1] != tiles[i][1] {
			outputs++
		}
	}
	if inputs > 0 || outputs > 0 {
		t.Errorf("of %d tiles, %d inputs differ from Python's and %d outputs differ for an identical input", len(tiles), inputs, outputs)
	}
	py := readGzip(t, filepath.Join(study, probFile), int64(4*len(p.Q)+1))
	if len(py) != 4*len(p.Q) {
		t.Fatalf("%s: %d bytes, want %d (the volume's %v)", probFile, len(py), 4*len(p.Q), v.Geometry.String())
	}
	worst, over := 0.0, 0
	for i, q := range p.Q {
		d := math.Abs(float64(q)/255 - float64(math.Float32frombits(binary.LittleEndian.Uint32(py[4*i:]))))
		worst = max(worst, d)
		if d > 1.0/255+1e-6 {
			over++
		}
	}
	if over > 0 {
		t.Errorf("%d voxels differ from the Python pipeline by more than one step (1/255); largest %.4f", over, worst)
	}
	t.Logf("%d tiles; largest probability difference %.5f (one step is %.5f)", len(rec.tiles), worst, 1.0/255)
}
