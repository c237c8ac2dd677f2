"""Goldens for the Go tiled runner: the Python reference (infer.run_series) on two slices of the
committed phantom, through the fixture model's int8 TFLite tiles, single scale on the slice's own
grid (the tiling, gating, blending and quantisation) and at the shipped scales from the
phantom's own 1.25 mm pixels (the resampling both ways as well).

    python -m midline_model.runner_golden --out ../../accel/testdata/runner_golden

The context/ case runs the 2.5D fixture (three channels) over ten slices declared 1.5 mm apart
with channels 5 mm apart, so each channel is three slices away, mirrored at the ends.

Writes, per case (single/, multi/, context/), z.f32 (the normalised slices, float32 little endian, slice-major), prob.f32 (the
reference probability) and meta.json (shape, fill value, plan).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from midline_model import data, dicomio, infer

ROOT = Path(__file__).resolve().parents[3]


FIXTURE = ROOT / "accel" / "testdata" / "fixture.tflite"
FIXTURE_C3 = ROOT / "accel" / "testdata" / "fixture_c3.tflite"
LESION = np.s_[6:8, 10:150, 20:120]  # two slices through the lesion, 140x100
STACK = np.s_[2:12, 10:150, 20:120]  # ten slices around it

CASES = {
    # single scale on the slice's own grid: tiling, gating, blending, quantisation only
    "single": (FIXTURE, LESION, (5.0, 1.0, 1.0), infer.Plan(size=64, scales_mm=(1.0,), scale_weights=(1.0,),
                                                      tile_overlap=0.5, roi_gate=0.05)),
    # the shipped plan's scales from the phantom's 1.25 mm pixels: resampling both ways too
    "multi": (FIXTURE, LESION, (5.0, 1.25, 1.25), infer.Plan(size=64, scales_mm=(1.0, 2.0),
                                                       scale_weights=(0.7, 0.3), tile_overlap=0.5,
                                                       roi_gate=0.05)),
    # 2.5D: channels context_mm apart, three slices at the declared 1.5 mm (contracts.md)
    "context": (FIXTURE_C3, STACK, (1.5, 1.0, 1.0), infer.Plan(size=64, scales_mm=(1.0,), scale_weights=(1.0,),
                                                         tile_overlap=0.5, roi_gate=0.05, context=1,
                                                         context_mm=5.0)),
}
# No case for the shipped T2 model yet: on its tiles Debian's TFLite and TensorFlow's wheel
# disagree on a few dozen output values near the lesion's edge (up to 12 steps), although both
# run builtin kernels at one thread and agree on the fixture and on the self-test tile. Until the
# operator responsible is found, a T2 golden would only record the disagreement.


def make(out: Path) -> None:
    for name, (model, crop, spacing, plan) in CASES.items():
        if model.exists():
            make_case(out / name, model, crop, spacing, plan)


def make_case(out: Path, model: Path, crop, spacing, plan) -> None:
    real, _ = dicomio.read_series(ROOT / "testdata" / "phantom" / "seed4" / "T2")
    real = np.ascontiguousarray(real[crop])
    fn = infer.tflite_tiles(model)
    prob, stats = infer.run_series(real, spacing, fn, plan)
    norm = data.fit_normalization(real)
    out.mkdir(parents=True, exist_ok=True)
    norm.apply(real).astype("<f4").tofile(out / "z.f32")
    prob.astype("<f4").tofile(out / "prob.f32")
    meta = {"model": str(model.relative_to(ROOT)), "slices": real.shape[0], "rows": real.shape[1],
            "cols": real.shape[2], "slice_mm": spacing[0], "spacing": list(spacing[1:]),
            "fill": data.pad_value(norm), "size": plan.size, "scales_mm": list(plan.scales_mm),
            "scale_weights": list(plan.scale_weights), "tile_overlap": plan.tile_overlap,
            "roi_gate": plan.roi_gate, "context": plan.context, "context_mm": plan.context_mm,
            "tiles_run": stats.tiles_run}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.runner_golden", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    make(p.parse_args(argv).out)


if __name__ == "__main__":
    main()
