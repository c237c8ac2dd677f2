"""Preprocessing as the firmware does it, and the training tiles made from phantom studies.

The three functions the firmware's preproc must match (docs/contracts.md, "Preprocessing"):
`normalize` (DESIGN.md's percentile-zscore), `resample_inplane` (anti-aliased in-plane resampling
to a model scale) and `tile_origins` / `pad_value` (how a slice is cut into tiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold on a 256-bin histogram spanning the values' range; returns the upper
    edge of the last bin of the lower class, so 'foreground' is values > threshold."""
    v = values.ravel().astype(np.float64)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=256, range=(lo, hi))
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    centres = (edges[:-1] + edges[1:]) / 2
    m = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0 = m / w0
        mu1 = (m[-1] - m) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def nearest_rank(sorted_values: np.ndarray, p: float) -> float:
    """The nearest-rank percentile: the value at rank ceil(p/100 * n) (1-based), at least 1."""
    n = len(sorted_values)
    rank = max(1, math.ceil(p / 100 * n))
    return float(sorted_values[min(rank, n) - 1])


@dataclass(frozen=True)
class Normalization:
    threshold: float
    low: float
    high: float
    mean: float
    std: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.clip(x, self.low, self.high) - self.mean) / self.std).astype(np.float32)


# The percentiles of each sequence's percentile-zscore, written into its model.json by export and
# used for its training tiles and its evaluation. FLAIR's lesion is the brightest tissue and a
# small one is under 0.5 % of the head: p_high 99.5 clipped it to the level of the brightest
# normal tissue, so FLAIR keeps all but the top 0.05 % (RESULTS.md). So does T1C, whose enhancing
# rim is its brightest tissue: at 2400 steps, two seeds each, 0.818 and 0.819 against 0.781 and
# 0.781 with p_high 99.5 (README, "T1C").
NORMALIZATION = {"T2": (0.5, 99.5), "FLAIR": (0.5, 99.95), "T1C": (0.5, 99.95)}

# Each sequence's roi_gate, written into its model.json by export and used by its evaluation. The
# gate runs a fine tile only where the coarse (2 mm) scale saw something, which assumes that the
# coarse scale finds every lesion. On T1C it does not: in the recipe's runs the 2 mm scale gave a
# ring-enhancing lesion with a necrotic core no probability at all (at most 0.001 inside the GTV)
# while the 1 mm scale found it, and the gate dropped the whole lesion, one to four of the five
# ring lesions among the test studies from one run to the next (README, "T1C"). T1C runs every
# tile: 2.3 times the tiles on the test studies, no lesion lost to the gate.
ROI_GATE = {"T2": 0.05, "FLAIR": 0.05, "T1C": 0.0}


def fit_normalization(volume: np.ndarray, p_low: float = 0.5, p_high: float = 99.5) -> Normalization:
    """DESIGN.md's percentile-zscore, fitted on a whole series (not per slice or tile)."""
    t = otsu_threshold(volume)
    fg = np.sort(volume[volume > t].ravel())
    if fg.size == 0:
        raise ValueError("series has no foreground (constant image?)")
    low, high = nearest_rank(fg, p_low), nearest_rank(fg, p_high)
    clipped = np.clip(fg, low, high).astype(np.float64)
    std = float(clipped.std())
    if not std > 0:
        raise ValueError("series foreground has no spread")
    return Normalization(threshold=t, low=low, high=high, mean=float(clipped.mean()), std=std)


def resample_inplane(volume: np.ndarray, spacing: tuple[float, float], target: float,
                     order: int = 1) -> np.ndarray:
    """Resample (slices, rows, columns) from pixel spacing (row, column) to `target` mm in-plane.

    The new grid covers the same field of view with pixel centres aligned on its edges:
    n' = max(1, round(n * s / target)), and new pixel j samples old coordinate
    (j + 0.5) * (n / n') - 0.5 (the actual step n/n' keeps the FOV exact). Shrinking is
    anti-aliased by a Gaussian of sigma = (factor - 1) / 2 old pixels per axis first.
    """
    out_shape = [max(1, round(n * s / target)) for n, s in zip(volume.shape[1:], spacing)]
    factors = [n / m for n, m in zip(volume.shape[1:], out_shape)]
    sig = [max(0.0, (f - 1) / 2) for f in factors]
    src = volume.astype(np.float32)
    if any(s > 0 for s in sig):
        src = ndimage.gaussian_filter(src, sigma=(0, sig[0], sig[1]), mode="nearest")
    rows = (np.arange(out_shape[0]) + 0.5) * factors[0] - 0.5
    cols = (np.arange(out_shape[1]) + 0.5) * factors[1] - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = np.empty((volume.shape[0], *out_shape), np.float32)
    for k in range(volume.shape[0]):
        out[k] = ndimage.map_coordinates(src[k], [rr, cc], order=order, mode="nearest")
    return out


def tile_origins(n: int, size: int, overlap: float) -> list[int]:
    """Tile starts along one axis: stride = round(size * (1 - overlap)); tiles cover [0, n); the
    last tile is aligned to the end; an axis shorter than a tile gets one tile at 0 (padded)."""
    if n <= size:
        return [0]
    stride = max(1, round(size * (1 - overlap)))
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def pad_value(norm: Normalization) -> float:
    """What tiles hold beyond the image's edge: the normalised clip floor (what air maps to)."""
    return float(norm.apply(np.array([norm.low]))[0])


def crop(img: np.ndarray, top: int, left: int, size: int, fill: float) -> np.ndarray:
    """A size x size window of a 2D image, filled with `fill` where it leaves the image."""
    out = np.full((size, size), fill, np.float32)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, img.shape[0]), min(left + size, img.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = img[r0:r1, c0:c1]
    return out


def crop_tile(vol: np.ndarray, k: int, channels, top: int, left: int, size: int, fill: float) -> np.ndarray:
    """The tile of slice k of a (slices, rows, cols) volume: crop(vol[k]) when channels is None,
    else (2.5D) the crops of the slices `channels` stacked along a last axis."""
    if channels is None:
        return crop(vol[k], top, left, size, fill)
    return np.stack([crop(vol[j], top, left, size, fill) for j in channels], axis=-1)
