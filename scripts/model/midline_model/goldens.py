"""Goldens for the firmware's preproc: the Python reference's normalisation and in-plane
resampling of the committed phantom study, for Go's parity tests.

    python -m midline_model.goldens --study ../../testdata/phantom/seed4 --out ../../preproc/testdata/goldens

Writes `index.json` (per series: the sha256 of the rescaled float32 volume as `dicomio.read_series`
loads it, the fitted `Normalization`, the pad value; per resampling case: spacing, scale, shapes,
file) and raw little-endian float32 images (`*.f32`, row-major) of one slice: the normalised
native slice, its resamplings to several scales and spacings (upsampling, anti-aliased shrinking,
mixed, odd factors) and for two of them the way back to the native grid (`infer.to_native`). Deterministic: the
same study gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from midline_model import data, dicomio, infer

SERIES = ("T2", "FLAIR", "T1C")
SLICE = 7  # through the lesion
SCALE = (0.0371, -11.3)  # value x SCALE[0] + SCALE[1], in float32
P_LOW, P_HIGH = 0.5, 99.5
# (name, spacing passed to resample_inplane, scale mm): the spacing is a parameter of the pure
# function, so anisotropic cases reuse the phantom's pixels.
# back: also write the way back to the native grid.
CASES = (
    ("up_1.0", (1.25, 1.25), 1.0, False),
    ("down_2.0", (1.25, 1.25), 2.0, True),
    ("mixed_1.0", (1.25, 0.5), 1.0, False),
    ("odd_3.0", (1.3, 0.7), 3.0, True),
)


def _write(out: Path, name: str, img: np.ndarray) -> dict:
    a = np.ascontiguousarray(img, dtype="<f4")
    (out / f"{name}.f32").write_bytes(a.tobytes())
    return {"file": f"{name}.f32", "shape": list(a.shape)}


def make(study: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    index: dict = {"schema": "midline.preproc-goldens/1", "slice": SLICE, "p_low": P_LOW,
                   "p_high": P_HIGH, "series": {}, "resample": {}}
    z = None
    for seq in SERIES:
        vol, _ = dicomio.read_series(study / seq)
        vol = np.ascontiguousarray(vol, dtype="<f4")
        norm = data.fit_normalization(vol, P_LOW, P_HIGH)
        fg = int(np.count_nonzero(vol > norm.threshold))
        index["series"][seq] = {
            "shape": list(vol.shape),
            "volume_sha256": hashlib.sha256(vol.tobytes()).hexdigest(),
            "threshold": norm.threshold, "low": norm.low, "high": norm.high,
            "mean": norm.mean, "std": norm.std, "foreground": fg,
            "pad_value": data.pad_value(norm),
        }
        if seq == "T2":
            z = norm.apply(vol)
    # Non-integer values with many distinct levels (a rescaled series) test the histogram's bin
    # edges and the percentiles harder than the phantom's integers.
    vol, _ = dicomio.read_series(study / "T2")
    scaled = (vol.astype(np.float32) * np.float32(SCALE[0]) + np.float32(SCALE[1])).astype("<f4")
    norm = data.fit_normalization(scaled, P_LOW, P_HIGH)
    index["scaled"] = {
        "series": "T2", "scale": list(SCALE), "threshold": norm.threshold, "low": norm.low,
        "high": norm.high, "mean": norm.mean, "std": norm.std,
        "foreground": int(np.count_nonzero(scaled > norm.threshold)),
        "volume_sha256": hashlib.sha256(scaled.tobytes()).hexdigest(),
    }
    assert z is not None
    index["native"] = _write(out, "t2_z", z[SLICE])
    for name, spacing, scale, back in CASES:
        r = data.resample_inplane(z[SLICE:SLICE + 1], spacing, scale)
        case = {"spacing": list(spacing), "scale": scale, **_write(out, f"t2_{name}", r[0])}
        if back:
            native = infer.to_native(r, z.shape[1:])
            case["back"] = _write(out, f"t2_{name}_back", native[0])
        index["resample"][name] = case
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    make(a.study, a.out)


if __name__ == "__main__":
    main()
