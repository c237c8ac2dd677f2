package models

import (
	"context"
	"io/fs"
	"slices"
	"testing"

	"github.com/midline-rt/midline/accel"
)

// TestShippedBundlesPassTheirSelfTests loads every shipped bundle as the firmware would, on the
// CPU engine with Debian's TFLite, and requires the self-test output recorded by the Python
// toolchain (TensorFlow's builtin kernels): the two runtimes agree byte for byte on each model.
func TestShippedBundlesPassTheirSelfTests(t *testing.T) {
	names, err := Names()
	if err != nil || len(names) == 0 {
		t.Fatalf("no shipped bundles: %v", err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := accel.LoadBundle(name)
			if err != nil {
				t.Fatal(err)
			}
			if b.Meta.ClinicalUse {
				t.Error("a phantom-trained model claims clinical use")
			}
			if b.Meta.Name != name {
				t.Errorf("folder %s holds model %s", name, b.Meta.Name)
			}
			m, err := b.Open(accel.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := b.SelfTest(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBundlesAreEmbedded(t *testing.T) {
	names, _ := Names()
	if !slices.Contains(names, "dmg-t2") {
		t.Fatalf("embedded bundles %v lack dmg-t2", names)
	}
	for _, f := range []string{"model.json", "model.tflite", "selftest_in.bin", "MODEL_CARD.md"} {
		if _, err := fs.Stat(FS(), "dmg-t2/"+f); err != nil {
			t.Errorf("dmg-t2/%s: %v", f, err)
		}
	}
}
