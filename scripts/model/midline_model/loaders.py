"""Real data for retraining: BraTS-style NIfTI folders and DICOM series with an RTSTRUCT, as a
planning system exports them. Both give, per case and sequence, a volume of real values in the
model's orientation (slices, rows, columns; rows run to the patient's posterior, columns to the
patient's left, as an axial DICOM series with ImageOrientationPatient 1,0,0,0,1,0), the GTV mask
on the same grid, and the (slice, row, column) spacing in mm. A DICOM series must be near-axial
(any position: it is flipped and transposed exactly); other planes are refused.

BraTS folders: one folder per case holding `<case>_t2.nii.gz`, `_flair`, `_t1ce` and `_seg`
(BraTS 2020 names) or `-t2w`, `-t2f`, `-t1c` and `-seg` (BraTS 2023 names). The GTV is every
labelled voxel of the segmentation (the whole abnormality, as radiotherapy contours DMG).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from midline_model import dicomio

BRATS_NAMES = {"T2": ("_t2", "-t2w"), "FLAIR": ("_flair", "-t2f"), "T1C": ("_t1ce", "-t1c"),
               "SEG": ("_seg", "-seg")}


@dataclass
class Case:
    name: str
    real: np.ndarray  # (slices, rows, cols) float32
    gtv: np.ndarray  # (slices, rows, cols) bool
    spacing: tuple[float, float, float]  # slice, row, column (mm)


def _brats_file(folder: Path, key: str) -> Path | None:
    for suffix in BRATS_NAMES[key]:
        for ext in (".nii.gz", ".nii"):
            hits = sorted(folder.glob(f"*{suffix}{ext}"))
            if hits:
                return hits[0]
    return None


def _axial(img: nib.Nifti1Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI volume as (slices, rows, cols) in the model's orientation, and its spacing."""
    can = nib.as_closest_canonical(img)  # axes increase towards Right, Anterior, Superior
    d = np.asarray(can.dataobj, dtype=np.float32)
    zx, zy, zz = (float(v) for v in can.header.get_zooms()[:3])
    # columns towards the patient's left (-R), rows towards posterior (-A): flip both.
    vol = d[::-1, ::-1, :].transpose(2, 1, 0)
    return np.ascontiguousarray(vol), (zz, zy, zx)


def load_brats_case(folder: Path, seq: str) -> Case:
    img_path, seg_path = _brats_file(folder, seq), _brats_file(folder, "SEG")
    if img_path is None or seg_path is None:
        raise FileNotFoundError(f"{folder}: no {seq} image or no segmentation "
                                f"(looked for {BRATS_NAMES[seq]} and {BRATS_NAMES['SEG']})")
    real, spacing = _axial(nib.load(str(img_path)))
    seg, seg_spacing = _axial(nib.load(str(seg_path)))
    if seg.shape != real.shape or not np.allclose(spacing, seg_spacing, atol=1e-3):
        raise ValueError(f"{folder}: segmentation grid {seg.shape} differs from {seq} {real.shape}")
    return Case(name=folder.name, real=real, gtv=seg > 0, spacing=spacing)


def brats_folders(root: Path) -> list[Path]:
    """A BraTS-style folder's case folders, in name order."""
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"{root}: no case folders")
    return folders


def has_sequence(folder: Path, seq: str) -> bool:
    return _brats_file(folder, seq) is not None


def brats_cases(root: Path, seq: str) -> list[Case]:
    return [load_brats_case(f, seq) for f in brats_folders(root)]


# ---- DICOM + RTSTRUCT ------------------------------------------------------------------------------

def rasterize_polygon(rows: int, cols: int, pts_rc: np.ndarray) -> np.ndarray:
    """Pixels whose centres lie inside a closed polygon (even-odd rule), points in (row, col)."""
    mask = np.zeros((rows, cols), bool)
    if len(pts_rc) < 3:
        return mask
    r0 = max(0, int(np.floor(pts_rc[:, 0].min())))
    r1 = min(rows - 1, int(np.ceil(pts_rc[:, 0].max())))
    y = pts_rc[:, 0]
    x = pts_rc[:, 1]
    y2, x2 = np.roll(y, -1), np.roll(x, -1)
    cc = np.arange(cols)
    for r in range(r0, r1 + 1):
        crosses = (y <= r) != (y2 <= r)
        if not crosses.any():
            continue
        xs = x[crosses] + (r - y[crosses]) * (x2[crosses] - x[crosses]) / (y2[crosses] - y[crosses])
        inside = (xs[None, :] > cc[:, None]).sum(axis=1) % 2 == 1
        mask[r] |= inside
    return mask


def load_dicom_case(series_dir: Path, rtstruct: Path, roi_name: str) -> Case:
    """A DICOM series and the named ROI of an RTSTRUCT, rasterised on the series' grid (holes as
    separate contours combine by the even-odd rule, as CLOSED_PLANAR allows)."""
    real, dss = dicomio.read_series(series_dir)
    rs = pydicom.dcmread(rtstruct)
    numbers = {r.ROINumber: r.ROIName for r in rs.StructureSetROISequence}
    wanted = [n for n, name in numbers.items() if name == roi_name]
    if not wanted:
        raise ValueError(f"{rtstruct}: no ROI named {roi_name!r} (has {sorted(numbers.values())})")
    roi = next(c for c in rs.ROIContourSequence if c.ReferencedROINumber == wanted[0])
    row = np.array(dss[0].ImageOrientationPatient[:3], float)
    col = np.array(dss[0].ImageOrientationPatient[3:], float)
    normal = np.cross(row, col)
    dr, dc = (float(v) for v in dss[0].PixelSpacing)
    by_uid = {d.SOPInstanceUID: k for k, d in enumerate(dss)}
    heights = np.array([np.dot(np.array(d.ImagePositionPatient, float), normal) for d in dss])
    gtv = np.zeros(real.shape, bool)
    for contour in getattr(roi, "ContourSequence", []):
        pts = np.array(contour.ContourData, float).reshape(-1, 3)
        k = _slice_of(contour, pts, by_uid, heights, normal)
        ipp = np.array(dss[k].ImagePositionPatient, float)
        rc = np.stack([(pts - ipp) @ col / dr, (pts - ipp) @ row / dc], axis=1)
        gtv[k] ^= rasterize_polygon(real.shape[1], real.shape[2], rc)
    spacing = float(np.median(np.diff(heights))) if len(heights) > 1 else float(dss[0].SliceThickness)
    real, gtv, (dr, dc) = to_model_orientation(real, gtv, row, col, (dr, dc), f"{series_dir}")
    return Case(name=series_dir.name, real=real, gtv=gtv, spacing=(abs(spacing), dr, dc))


# How far from transverse a series may be and still be read by in-plane flips and a transpose:
# the firmware's near-axial bound (preproc.DefaultMaxTiltDeg, docs/contracts.md "Orientation").
MAX_TILT_COS = np.cos(np.radians(45))


def to_model_orientation(real: np.ndarray, gtv: np.ndarray, row: np.ndarray, col: np.ndarray,
                         pixel: tuple[float, float], what: str):
    """A near-axial series (slices sorted along the normal, as dicomio.read_series gives them)
    and its mask in the model's orientation: slices upwards, rows to the patient's posterior,
    columns to the left, by exact flips and a transpose; and its (row, column) spacing. Other
    planes are refused (the firmware reformats them; training on them is not supported)."""
    normal = np.cross(row, col)
    if abs(normal[2]) < MAX_TILT_COS:
        raise ValueError(f"{what}: not an axial series (slice normal {np.round(normal, 3)}); "
                         "reformat it to axial before training on it")
    if normal[2] < 0:  # sorted along a downward normal: the first slice is the top one
        real, gtv = real[::-1], gtv[::-1]
    # Array rows run along `col`, array columns along `row` (ImageOrientationPatient).
    if abs(row[0]) < abs(row[1]):  # rows run left-right: transpose
        real, gtv = real.transpose(0, 2, 1), gtv.transpose(0, 2, 1)
        row, col, pixel = col, row, (pixel[1], pixel[0])
    if col[1] < 0:
        real, gtv = real[:, ::-1], gtv[:, ::-1]
    if row[0] < 0:
        real, gtv = real[:, :, ::-1], gtv[:, :, ::-1]
    return np.ascontiguousarray(real), np.ascontiguousarray(gtv), pixel


def _slice_of(contour, pts, by_uid, heights, normal) -> int:
    refs = getattr(contour, "ContourImageSequence", [])
    if refs and refs[0].ReferencedSOPInstanceUID in by_uid:
        return by_uid[refs[0].ReferencedSOPInstanceUID]
    return int(np.argmin(np.abs(heights - float(np.mean(pts @ normal)))))
