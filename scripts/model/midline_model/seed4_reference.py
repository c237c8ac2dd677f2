"""The toolchain's own evaluation of the shipped models on the committed phantom study (seed 4),
which the firmware's RT Structure Set must reproduce (contour issue: Dice against the phantom
GTV within 0.01 of the toolchain's).

    python -m midline_model.seed4_reference --out ../../testdata/phantom/seed4/reference.json

Per sequence with a shipped model: the series read from its DICOM files (slices sorted along
the normal), `infer.run_series` through the int8 TFLite model at one thread and
`infer.postprocess`, exactly as evaluate.py does, then Dice, predicted and true volume against
the GTV mask, aligned slice by slice through the SOP Instance UIDs.

Also the parity goldens the firmware is held to (accel's TestShippedModelParity): the sha256 of
every tile's raw int8 input and output in the order run (`tiles_sha256`), and the probability
volume (slice-major, slices sorted along the normal) as float32 little endian, gzipped
(`{SEQ}.prob.f32.gz`, beside --out).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from midline_model import dicomio, infer, metrics

ROOT = Path(__file__).resolve().parents[3]
STUDY = ROOT / "testdata" / "phantom" / "seed4"


def reference(seq: str, bundle: Path, out: Path) -> dict:
    meta = json.loads((bundle / "model.json").read_text())
    real, dss = dicomio.read_series(STUDY / seq)
    study = json.loads((STUDY / "study.json").read_text())["series"][seq]
    # The mask is indexed (column, row, slice) in study.json's SOP Instance UID order.
    gtv = np.asarray(nib.load(STUDY / study["gtv"]).dataobj).transpose(2, 1, 0).astype(bool)
    order = [study["sop_instance_uids"].index(d.SOPInstanceUID) for d in dss]
    gtv = gtv[order]
    row_sp, col_sp = (float(x) for x in dss[0].PixelSpacing)
    slice_sp = float(study["spec"]["slice_spacing"])
    plan = infer.Plan.from_bundle(meta)
    tiles = []

    def record(q, y):
        tiles.append([hashlib.sha256(q.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()])
    prob, stats = infer.run_series(real, (slice_sp, row_sp, col_sp),
                                   infer.tflite_tiles(bundle / "model.tflite", record=record), plan)
    # mtime 0: the same volume gives the same file
    with gzip.GzipFile(out / f"{seq}.prob.f32.gz", "wb", mtime=0) as f:
        f.write(prob.astype("<f4").tobytes())
    voxel = row_sp * col_sp * slice_sp
    pred = infer.postprocess(prob, meta["threshold"], voxel, meta["min_component_mm3"])
    m = metrics.all_metrics(pred, gtv, (slice_sp, row_sp, col_sp))
    return {"model": f"{meta['name']} {meta['version']}", "dice": round(float(m["dice"]), 4),
            "pred_cm3": round(float(pred.sum() * voxel / 1000), 3),
            "gtv_cm3": round(float(gtv.sum() * voxel / 1000), 3), "tiles_run": stats.tiles_run,
            "prob": f"{seq}.prob.f32.gz", "tiles_sha256": tiles}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.seed4_reference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    out = {"schema": "midline.seed4-reference/1", "tflite_threads": 1}
    for seq in ("T2", "FLAIR", "T1C"):
        bundle = ROOT / "models" / f"dmg-{seq.lower()}"
        if (bundle / "model.json").exists():
            out[seq] = reference(seq, bundle, args.out.parent)
            print(seq, {k: v for k, v in out[seq].items() if k != "tiles_sha256"}, flush=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
