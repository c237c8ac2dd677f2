"""Dice of an RT Structure Set against a phantom study's ground-truth GTV, with plastimatch as
the rasterizer (an independent reader), for `make demo`.

    python -m midline_model.rtdice --study ../../testdata/phantom/seed4 --seq T2 --rtstruct RS.x.dcm

Prints JSON: the ROI rasterized, its volume, the GTV's volume and Dice. The mask plastimatch
writes is on the series' grid with slices sorted along the normal; the ground truth is in
study.json's SOP Instance UID order, so slices are matched through the UIDs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from midline_model import dicomio


def dice(study: Path, seq: str, rtstruct: Path) -> dict:
    info = json.loads((study / "study.json").read_text())["series"][seq]
    series = study / info["folder"]
    _, dss = dicomio.read_series(series)  # sorted along the normal, as plastimatch sorts
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["plastimatch", "convert", "--input", str(rtstruct), "--referenced-ct", str(series),
                        "--output-prefix", tmp, "--prefix-format", "nii.gz"],
                       check=True, capture_output=True)
        rois = sorted(Path(tmp).glob("*.nii.gz"))
        if not rois:
            raise SystemExit(f"plastimatch found no ROI in {rtstruct}")
        roi = rois[0]  # the GTV ROI comes first; a review ROI sorts after it (_REV)
        pred = np.asarray(nib.load(roi).dataobj).transpose(2, 1, 0) != 0
    gtv = np.asarray(nib.load(study / info["gtv"]).dataobj).transpose(2, 1, 0) != 0
    gtv = gtv[[info["sop_instance_uids"].index(d.SOPInstanceUID) for d in dss]]
    voxel = float(dss[0].PixelSpacing[0]) * float(dss[0].PixelSpacing[1]) * float(info["spec"]["slice_spacing"])
    inter = np.logical_and(pred, gtv).sum()
    return {"roi": roi.name.removesuffix(".nii.gz"), "dice": round(float(2 * inter / max(1, pred.sum() + gtv.sum())), 4),
            "pred_cm3": round(float(pred.sum() * voxel / 1000), 3), "gtv_cm3": round(float(gtv.sum() * voxel / 1000), 3)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.rtdice", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", type=Path, required=True)
    p.add_argument("--seq", required=True)
    p.add_argument("--rtstruct", type=Path, required=True)
    a = p.parse_args(argv)
    print(json.dumps(dice(a.study, a.seq, a.rtstruct)))


if __name__ == "__main__":
    main()
