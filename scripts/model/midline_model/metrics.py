"""Segmentation metrics on a series' own grid, with its voxel spacing."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of a to b's surface, and back."""
    sa, sb = _surface(a.astype(bool)), _surface(b.astype(bool))
    if not sa.any() or not sb.any():
        return np.array([np.inf]), np.array([np.inf])
    da = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    db = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    return da, db


def surface_dice(a, b, spacing, tol_mm: float = 2.0) -> float:
    """Fraction of both surfaces lying within tol_mm of the other."""
    da, db = surface_distances(a, b, spacing)
    if not np.isfinite(da).all():
        return 1.0 if (not a.any() and not b.any()) else 0.0
    return float(((da <= tol_mm).sum() + (db <= tol_mm).sum()) / (len(da) + len(db)))


def hd95_inplane(a, b, spacing) -> float:
    """95th percentile of the in-plane boundary distances, pooled over slices where both masks
    are present (slice thickness does not inflate it); inf when one mask is empty."""
    dists = []
    for k in range(a.shape[0]):
        if a[k].any() and b[k].any():
            da, db = surface_distances(a[k], b[k], spacing[1:])
            dists.extend([da, db])
    if not dists:
        return float("inf") if (a.any() or b.any()) else 0.0
    return float(np.percentile(np.concatenate(dists), 95))


def volume_error_pct(pred, truth, voxel_mm3: float) -> float:
    vt = truth.sum() * voxel_mm3
    return float(100 * (pred.sum() * voxel_mm3 - vt) / vt) if vt else float("nan")


def lesions_found(pred, truth) -> tuple[int, int]:
    """(ground-truth 3D components touched by the prediction, components)."""
    lab, n = ndimage.label(truth)
    hit = len(set(np.unique(lab[pred.astype(bool)])) - {0})
    return hit, n


def bootstrap_ci(values, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean over subjects."""
    v = np.asarray(values, float)
    rng = np.random.default_rng(seed)
    means = rng.choice(v, size=(n, len(v)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def all_metrics(pred, truth, spacing) -> dict:
    vox = float(np.prod(spacing))
    hit, n = lesions_found(pred, truth)
    return {"dice": dice(pred, truth), "surface_dice_2mm": surface_dice(pred, truth, spacing),
            "hd95_inplane_mm": hd95_inplane(pred, truth, spacing),
            "volume_error_pct": volume_error_pct(pred, truth, vox),
            "lesions_found": hit, "lesions": n}
