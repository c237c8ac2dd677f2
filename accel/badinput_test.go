package accel

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/midline-rt/midline/preproc"
)

// Bad volumes reaching SegmentVolume give an error, never a panic or a silent map. (Bad files are
// refused earlier, by preproc.LoadSeries: see preproc's load tests for 2048x2048 matrices, NaN
// and infinite rescales, missing slices and mixed geometry; bad models by Open and
// Bundle.Open: see TestBundleRefusesWhatDisagreesWithItsModel.)
func TestSegmentVolumeRefusesBadVolumes(t *testing.T) {
	sagittal := func(n int) *preproc.Volume {
		v := axialVolume(30, 30, n, 10)
		v.RowCosine, v.ColumnCosine, v.Normal = preproc.Vec3{0, 1, 0}, preproc.Vec3{0, 0, -1}, preproc.Vec3{-1, 0, 0}
		for k := range v.Positions {
			v.Positions[k] = preproc.Vec3{-float64(k), 0, 0}
		}
		return v
	}
	tests := []struct {
		name string
		want error
		v    *preproc.Volume
	}{
		{"nil", nil, nil},
		{"no slices", nil, &preproc.Volume{}},
		{"pixels short of the geometry", nil, func() *preproc.Volume { v := axialVolume(30, 30, 3, 11); v.Pixels = v.Pixels[:100]; return v }()},
		{"constant", preproc.ErrNoForeground, func() *preproc.Volume {
			v := axialVolume(30, 30, 3, 12)
			for i := range v.Pixels {
				v.Pixels[i] = 812
			}
			return v
		}()},
		{"NaN voxels", preproc.ErrBadValues, func() *preproc.Volume {
			v := axialVolume(30, 30, 3, 13)
			for i := 0; i < len(v.Pixels); i += 7 {
				v.Pixels[i] = float32(math.NaN())
			}
			return v
		}()},
		{"infinite voxel", preproc.ErrBadValues, func() *preproc.Volume { v := axialVolume(30, 30, 3, 14); v.Pixels[5] = float32(math.Inf(1)); return v }()},
		{"one-slice sagittal", nil, sagittal(1)},
	}
	r, err := NewRunner(&pointModel{size: 32, f: constant(0)}, plan1(32), sameGrid{})
	if err != nil {
		t.Fatal(err)
	}
	norm := Normalization{Method: "percentile-zscore", PLow: 0.5, PHigh: 99.5}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := SegmentVolume(context.Background(), r, norm, tc.v)
			if err == nil {
				t.Fatalf("accepted: %d bytes of probability", len(p.Q))
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
	// A good sagittal volume of a few slices runs (the reformat path), so the refusals above
	// are about their defects.
	if _, err := SegmentVolume(context.Background(), r, norm, sagittal(4)); err != nil {
		t.Errorf("a 4-slice sagittal volume: %v", err)
	}
}
