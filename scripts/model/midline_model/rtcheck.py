"""A second, independent reader of Midline's RT Structure Sets: rt-utils (with pydicom and
OpenCV) rasterizes each ROI onto the referenced series, and this prints, per ROI, its voxels, its
volume in cm3 and its voxels per slice (by SOP Instance UID) as JSON, for the firmware's tests to
compare with their own.

rt-utils rounds every vertex to the pixel grid and OpenCV's fillPoly also sets the pixels an edge
passes through, so its masks hold the pixel centres inside the contour plus up to about one
pixel more around the boundary. (dicompyler-core, the other reader the issue names, imports
pydicom's removed read_file and so cannot run beside pydicom 3, and its volume counts the end
slices by half.)

    python -m midline_model.rtcheck --series SERIES_DIR --rtstruct rtstruct.dcm
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pydicom


def volumes(series: Path, rtstruct: Path) -> dict:
    from rt_utils import RTStructBuilder  # imported here: only this command needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = RTStructBuilder.create_from(dicom_series_path=str(series), rt_struct_path=str(rtstruct))
    first = pydicom.dcmread(next(iter(sorted(series.glob("*.dcm")))), stop_before_pixels=True)
    row_sp, col_sp = (float(x) for x in first.PixelSpacing)
    positions = sorted(
        float(np.dot(np.array(d.ImagePositionPatient, float),
                     np.cross(np.array(d.ImageOrientationPatient[:3], float),
                              np.array(d.ImageOrientationPatient[3:], float))))
        for d in (pydicom.dcmread(f, stop_before_pixels=True) for f in series.glob("*.dcm")))
    slice_sp = float(np.mean(np.diff(positions)))
    sops = [d.SOPInstanceUID for d in rt.series_data]
    out = {}
    for name in rt.get_roi_names():
        mask = rt.get_roi_mask_by_name(name)  # (x, y, slice) in rt.series_data's order
        per = {sop: int(mask[:, :, i].sum()) for i, sop in enumerate(sops) if mask[:, :, i].any()}
        out[name] = {"voxels": int(mask.sum()), "cm3": float(mask.sum() * row_sp * col_sp * slice_sp / 1000),
                     "per_slice": per}
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.rtcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=Path, required=True)
    p.add_argument("--rtstruct", type=Path, required=True)
    args = p.parse_args(argv)
    print(json.dumps(volumes(args.series, args.rtstruct)))


if __name__ == "__main__":
    main()
