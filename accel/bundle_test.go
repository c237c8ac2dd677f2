package accel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureMeta is a model.json for the fixture model, its self-test taken from the goldens.
func fixtureMeta(sha string) map[string]any {
	return map[string]any{
		"name": "fixture", "version": "0.0.1", "sequence": "T2", "clinical_use": false,
		"roi": map[string]any{"name": "GTV_T2_AI", "type": "GTV", "color": []int{255, 64, 64}},
		"targets": map[string]any{"cpu": map[string]any{"file": "model.tflite",
			"selftest": map[string]any{"input": "selftest_in.bin", "output_sha256": sha}}},
		"checks":    map[string]any{"edgetpu": "uncompiled; op allowlist passed"},
		"input":     map[string]any{"size": 64, "channels": 1, "context_slices": 0},
		"scales_mm": []float64{1, 2}, "scale_weights": []float64{0.7, 0.3},
		"tile_overlap": 0.5, "blend": "gaussian", "roi_gate": 0.05,
		"normalization": map[string]any{"method": "percentile-zscore", "p_low": 0.5, "p_high": 99.5},
		"threshold":     0.5, "min_component_mm3": 50,
		"metrics": map[string]any{"test": map[string]any{}},
		"runtime": map[string]any{"min_firmware": "0.1.0"},
	}
}

func writeBundle(t *testing.T, meta map[string]any) string {
	t.Helper()
	g := readGolden(t)
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", g.Model), filepath.Join(dir, "model.tflite"))
	copyFile(t, filepath.Join(goldenDir, g.Cases[0].Input), filepath.Join(dir, "selftest_in.bin"))
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBundleOpensAndPassesItsSelfTest(t *testing.T) {
	g := readGolden(t)
	b, err := LoadBundle(writeBundle(t, fixtureMeta(g.Cases[0].OutputSHA256)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Open(Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := b.SelfTest(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if p := b.Meta.Plan(); p.Size != 64 || p.Stride() != 32 {
		t.Errorf("plan %+v", p)
	}
}

func TestBundleSelfTestCatchesADifferentOutput(t *testing.T) {
	g := readGolden(t)
	b, err := LoadBundle(writeBundle(t, fixtureMeta(g.Cases[1].OutputSHA256))) // another case's hash
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := b.SelfTest(context.Background(), m); !errors.Is(err, ErrSelfTest) {
		t.Errorf("err = %v, want ErrSelfTest", err)
	}
}

func TestBundleRefusesWhatDisagreesWithItsModel(t *testing.T) {
	g := readGolden(t)
	sha := g.Cases[0].OutputSHA256
	meta := fixtureMeta(sha)
	meta["input"] = map[string]any{"size": 128, "channels": 1, "context_slices": 0}
	b, err := LoadBundle(writeBundle(t, meta))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.Open(Options{}); err == nil || !strings.Contains(err.Error(), "model.json says") {
		if m != nil {
			m.Close()
		}
		t.Errorf("size mismatch: err = %v", err)
	}
	if _, err := b.Open(Options{Engine: EdgeTPU}); err == nil {
		t.Error("a bundle without an edgetpu target opened on the Edge TPU")
	}

	dir := writeBundle(t, fixtureMeta(sha))
	full, _ := os.ReadFile(filepath.Join(dir, "model.tflite"))
	os.WriteFile(filepath.Join(dir, "model.tflite"), full[:len(full)/2], 0o644)
	b, err = LoadBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.Open(Options{}); err == nil {
		m.Close()
		t.Error("a truncated model.tflite opened")
	}

	dir = writeBundle(t, fixtureMeta(sha))
	os.WriteFile(filepath.Join(dir, "selftest_in.bin"), make([]byte, 10), 0o644)
	b, _ = LoadBundle(dir)
	m, err := b.Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := b.SelfTest(context.Background(), m); err == nil {
		t.Error("a short self-test input passed")
	}
}

func TestParseBundleMetaRefusesBadFields(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		edit func(m map[string]any)
		want string
	}{
		{"unknown key", func(m map[string]any) { m["treshold"] = 0.5 }, "unknown field"},
		{"version", func(m map[string]any) { m["version"] = "one" }, "semantic version"},
		{"sequence", func(m map[string]any) { m["sequence"] = "DWI" }, "sequence"},
		{"path in file", func(m map[string]any) {
			m["targets"] = map[string]any{"cpu": map[string]any{"file": "../../etc/passwd",
				"selftest": map[string]any{"input": "in.bin", "output_sha256": sha}}}
		}, "plain file name"},
		{"engine", func(m map[string]any) {
			m["targets"] = map[string]any{"gpu": map[string]any{"file": "m.tflite",
				"selftest": map[string]any{"input": "in.bin", "output_sha256": sha}}}
		}, "not an engine"},
		{"threshold", func(m map[string]any) { m["threshold"] = 1.5 }, "threshold"},
		{"weights", func(m map[string]any) { m["scale_weights"] = []float64{1} }, "weights"},
		{"context", func(m map[string]any) {
			m["input"] = map[string]any{"size": 128, "channels": 1, "context_slices": 2}
		}, "context"},
		{"context mm", func(m map[string]any) {
			m["input"] = map[string]any{"size": 128, "channels": 3, "context_slices": 1, "context_mm": 25}
		}, "context 25 mm"},
		{"long roi", func(m map[string]any) {
			m["roi"] = map[string]any{"name": "GTV_T2_AI_TOO_LONG_NAME", "type": "GTV", "color": []int{1, 2, 3}}
		}, "16 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := fixtureMeta(sha)
			tc.edit(m)
			b, _ := json.Marshal(m)
			if _, err := ParseBundleMeta(b); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	b, _ := json.Marshal(fixtureMeta(sha))
	if _, err := ParseBundleMeta(b); err != nil {
		t.Errorf("valid model.json refused: %v", err)
	}
}

func FuzzParseBundleMeta(f *testing.F) {
	b, _ := json.Marshal(fixtureMeta(strings.Repeat("0", 64)))
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"input":{"size":-1},"scales_mm":[1e308],"scale_weights":[-1]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseBundleMeta(raw)
		if err != nil {
			return
		}
		// Whatever passes must make a plan the runner accepts.
		if err := m.Plan().Validate(); err != nil {
			t.Fatalf("accepted model.json with an invalid plan: %v", err)
		}
	})
}
