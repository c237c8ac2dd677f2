package preproc

import (
	"context"
	"testing"
)

// Preprocessing costs per series, for the pipeline overhead in `make bench` (the committed
// phantom: 160x160x14).

func BenchmarkLoadSeriesPhantom(b *testing.B) {
	paths := phantomPaths(b, "T2")
	for b.Loop() {
		if _, err := LoadSeries(context.Background(), paths, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFitNormalizationPhantom(b *testing.B) {
	v, err := LoadSeries(context.Background(), phantomPaths(b, "T2"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := FitNormalization(v.Pixels, 0.5, 99.5); err != nil {
			b.Fatal(err)
		}
	}
}

// A full-size series' worth of values (512x512x30), large enough for the split passes.
func BenchmarkFitNormalization512x30(b *testing.B) {
	v := make([]float32, 512*512*30)
	for i := range v {
		v[i] = float32((i*7919)%1201) + float32(i%3)*0.25 // spread over 0 to 1200
	}
	for b.Loop() {
		if _, err := FitNormalization(v, 0.5, 99.5); err != nil {
			b.Fatal(err)
		}
	}
}

// One 512x512 slice at 0.5 mm shrunk to 2 mm (anti-aliased): the costliest resampling.
func BenchmarkResample512To2mm(b *testing.B) {
	r, err := NewResampler(512, 512, [2]float64{0.5, 0.5}, 2)
	if err != nil {
		b.Fatal(err)
	}
	src := make([]float32, 512*512)
	for i := range src {
		src[i] = float32(i % 977)
	}
	or, oc := r.OutSize()
	dst := make([]float32, or*oc)
	b.ReportAllocs()
	for b.Loop() {
		r.Resample(dst, src)
	}
}
