"""The reference of the firmware's tiled multi-scale inference (docs/contracts.md, "Tiled
inference"), so that the toolchain's metrics describe what the box does, and so that the Go
runner has something exact to be compared with.

For one series: normalise (percentile-zscore, whole series); for each scale in `scales_mm`,
coarsest first, resample in-plane to it, cut each slice into tiles (`data.tile_origins`, pad with
`data.pad_value`), run the tiles the gate allows, blend them with a Gaussian weight of
sigma = size/8 into one buffer per slice, and map the result back to the native grid; fuse the
scales with `scale_weights`. A fine tile runs only where the coarser probability, dilated by one
tile stride, reaches `roi_gate` somewhere in the tile; where no tile ran, that scale's
probability is 0. The gate of a slice is the coarser probability of every slice within
GATE_SLAB_MM of it along the normal (their maximum), so a lesion's thin end slices, which the
coarse scale often misses, still get their fine tiles. With roi_gate = 0 every tile runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage

from midline_model import data

# How far along the slice normal a coarse finding opens finer tiles (accel.GateSlabMM).
GATE_SLAB_MM = 20.0


def gate_reach(slice_mm: float) -> int:
    """Slices on either side that a slice's gate takes in, at slice spacing slice_mm; a
    thousandth of a slice of tolerance, as accel.gateReach, since spacings measured from DICOM
    positions land either side of a whole number (5.0000022 mm here, 4.999999995 in Go)."""
    return int(np.floor(GATE_SLAB_MM / slice_mm + 1e-3)) if slice_mm > 0 else 0


# A tile function takes a batch of normalised float tiles (n, size, size) and returns
# probabilities (n, size, size).
TileFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Plan:
    size: int = 128
    scales_mm: tuple[float, ...] = (1.0, 2.0)
    scale_weights: tuple[float, ...] = (0.7, 0.3)
    tile_overlap: float = 0.5
    roi_gate: float = 0.05
    p_low: float = 0.5
    p_high: float = 99.5
    context: int = 0  # 2.5D: slices on each side given as extra channels (contracts.md)
    context_mm: float = 0.0  # 2.5D: distance between channels in mm (0: adjacent slices)

    @classmethod
    def from_bundle(cls, meta: dict) -> "Plan":
        n = meta["normalization"]
        return cls(size=meta["input"]["size"], scales_mm=tuple(meta["scales_mm"]),
                   scale_weights=tuple(meta["scale_weights"]), tile_overlap=meta["tile_overlap"],
                   roi_gate=meta["roi_gate"], p_low=n["p_low"], p_high=n["p_high"],
                   context=meta["input"].get("context_slices", 0),
                   context_mm=meta["input"].get("context_mm", 0.0))


def bundle_plan(seq: str, channels: int = 1, context_mm: float = 0.0) -> dict:
    """The fields of a sequence's model.json that say how the firmware tiles, fuses and
    thresholds (export.model_json writes them; the evaluation runs Plan.from_bundle of them), so
    that a bundle's numbers describe what the box does with it."""
    return {
        "input": {"size": 128, "channels": channels, "context_slices": (channels - 1) // 2,
                  **({"context_mm": context_mm} if channels > 1 and context_mm else {})},
        "scales_mm": [1.0, 2.0], "scale_weights": [0.7, 0.3],
        "tile_overlap": 0.5, "blend": "gaussian", "roi_gate": data.ROI_GATE[seq],
        "normalization": {"method": "percentile-zscore", "p_low": data.NORMALIZATION[seq][0],
                          "p_high": data.NORMALIZATION[seq][1]},
        "threshold": 0.5, "min_component_mm3": 50,
    }


@dataclass
class Stats:
    tiles_run: int = 0
    tiles_skipped: int = 0
    per_scale: dict = field(default_factory=dict)


def gaussian_weight(size: int) -> np.ndarray:
    c = (size - 1) / 2
    y = np.arange(size) - c
    g = np.exp(-(y ** 2) / (2 * (size / 8) ** 2))
    return np.outer(g, g).astype(np.float32)


def to_native(p: np.ndarray, native_shape: tuple[int, int]) -> np.ndarray:
    """Bilinear map of a (slices, r', c') probability back onto the native (rows, cols) grid,
    the inverse of data.resample_inplane's pixel-centre mapping, clamped at the edges."""
    n_r, n_c = native_shape
    m_r, m_c = p.shape[1:]
    rows = (np.arange(n_r) + 0.5) * (m_r / n_r) - 0.5
    cols = (np.arange(n_c) + 0.5) * (m_c / n_c) - 0.5
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    out = np.empty((p.shape[0], n_r, n_c), np.float32)
    for k in range(p.shape[0]):
        out[k] = ndimage.map_coordinates(p[k], [rr, cc], order=1, mode="nearest")
    return out


def run_series(real: np.ndarray, spacing: tuple[float, float, float], tile_fn: TileFn, plan: Plan,
               batch: int = 16, gating: bool = True) -> tuple[np.ndarray, Stats]:
    """Probability volume on the native grid for a (slices, rows, cols) series of real values,
    spacing (slice, row, column) in mm. gating=False runs every tile whatever roi_gate says (for
    tests and benchmarks)."""
    slice_mm, spacing = spacing[0], tuple(spacing[1:])
    reach = gate_reach(slice_mm)
    norm = data.fit_normalization(real, plan.p_low, plan.p_high)
    z = norm.apply(real)
    fill = data.pad_value(norm)
    order = np.argsort(plan.scales_mm)[::-1]  # coarsest first
    weight = gaussian_weight(plan.size)
    fused = np.zeros(real.shape, np.float32)
    stats = Stats()
    coarse = None  # previous scale's probability on the native grid
    for si in order:
        scale = plan.scales_mm[si]
        zs = data.resample_inplane(z, spacing, scale)
        gate = None
        if coarse is not None and gating and plan.roi_gate > 0:  # a gate of 0 opens every tile
            stride = max(1, round(plan.size * (1 - plan.tile_overlap)))
            g = data.resample_inplane(coarse, spacing, scale, order=1)
            gate = ndimage.maximum_filter(g, size=(2 * reach + 1, 2 * stride + 1, 2 * stride + 1))
        ps, run, skipped = _run_scale(zs, fill, tile_fn, plan, weight, gate, batch,
                                      context_step(slice_mm, plan.context_mm))
        stats.tiles_run += run
        stats.tiles_skipped += skipped
        stats.per_scale[scale] = {"run": run, "skipped": skipped}
        native = to_native(ps, real.shape[1:])
        fused += plan.scale_weights[si] * native
        coarse = native
    return fused / float(sum(plan.scale_weights)), stats


def _run_scale(zs, fill, tile_fn, plan, weight, gate, batch, step):
    size = plan.size
    acc = np.zeros(zs.shape, np.float32)
    wsum = np.zeros(zs.shape, np.float32)
    rows = data.tile_origins(zs.shape[1], size, plan.tile_overlap)
    cols = data.tile_origins(zs.shape[2], size, plan.tile_overlap)
    jobs = []
    skipped = 0
    for k in range(zs.shape[0]):
        for top in rows:
            for left in cols:
                if gate is not None:
                    window = gate[k, max(top, 0):top + size, max(left, 0):left + size]
                    if window.size == 0 or window.max() < plan.roi_gate:
                        skipped += 1
                        continue
                jobs.append((k, top, left))
    for i in range(0, len(jobs), batch):
        chunk = jobs[i:i + batch]
        tiles = np.stack([data.crop_tile(zs, k, context_slices(k, len(zs), plan.context, step) if plan.context else None,
                                         t, l, size, fill) for k, t, l in chunk])
        probs = tile_fn(tiles)
        for (k, top, left), p in zip(chunk, probs):
            _accumulate(acc[k], wsum[k], p * weight, weight, top, left)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(wsum > 0, acc / np.maximum(wsum, 1e-12), 0.0).astype(np.float32)
    return out, len(jobs), skipped


def context_slices(k: int, n: int, c: int, step: int = 1) -> np.ndarray:
    """The slices a 2.5D tile of slice k holds, k + step * j for j = -c..c, mirrored about the
    series' end slices (-1 is 1, n is n - 2) and clamped where the series is shorter than that."""
    j = np.abs(k + step * np.arange(-c, c + 1))
    j = np.where(j > n - 1, 2 * (n - 1) - j, j)
    return np.clip(j, 0, n - 1)


def context_step(slice_mm: float, context_mm: float) -> int:
    """Slices between a 2.5D tile's channels (contracts.md): 1 when the model counts its context in
    slices (context_mm 0); else the whole number of slices nearest context_mm / slice_mm, a tie
    (within a thousandth of a slice) going to the smaller, and at least 1."""
    if context_mm <= 0:
        return 1
    return max(1, math.ceil(context_mm / slice_mm - 0.5 - 1e-3))


def _accumulate(acc, wsum, pw, w, top, left):
    size = w.shape[0]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + size, acc.shape[0]), min(left + size, acc.shape[1])
    acc[r0:r1, c0:c1] += pw[r0 - top:r1 - top, c0 - left:c1 - left]
    wsum[r0:r1, c0:c1] += w[r0 - top:r1 - top, c0 - left:c1 - left]


def postprocess(prob: np.ndarray, threshold: float, voxel_mm3: float,
                min_component_mm3: float) -> np.ndarray:
    """Threshold, keep every 3D component of at least min_component_mm3, fill holes per slice
    (the GTV of DMG includes its necrotic core)."""
    mask = prob >= threshold
    lab, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, lab, range(1, n + 1)) * voxel_mm3
        keep = np.zeros(n + 1, bool)
        keep[1:] = sizes >= min_component_mm3
        mask = keep[lab]
    for k in range(mask.shape[0]):
        mask[k] = ndimage.binary_fill_holes(mask[k])
    return mask


# ---- tile functions ----------------------------------------------------------------------------

def keras_tiles(model) -> TileFn:
    def fn(tiles: np.ndarray) -> np.ndarray:
        x = tiles if tiles.ndim == 4 else tiles[..., None]  # (N, H, W) or 2.5D (N, H, W, C)
        return model.predict(x, batch_size=len(tiles), verbose=0)[..., 0]
    return fn


def tflite_tiles(path, threads: int = 1, record=None) -> TileFn:
    """Int8 tiles through TFLite's builtin kernels, quantising with the model's own parameters.
    One thread by default: with more, TFLite's int8 kernels can change a few output values by a
    step (seen on the T2 model), and the reference must be exactly reproducible. record(q, y),
    when given, sees each tile's raw int8 input and output (the parity goldens)."""
    from midline_model import tflite

    it = tflite.interpreter(path, num_threads=threads)
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    s_in, z_in = tflite.quantization(inp)
    s_out, z_out = tflite.quantization(out)

    def fn(tiles: np.ndarray) -> np.ndarray:
        res = np.empty(tiles.shape[:3], np.float32)
        for i, t in enumerate(tiles):
            q = np.clip(np.round(t / s_in) + z_in, -128, 127).astype(np.int8)
            y = tflite.run(it, q.reshape(1, *q.shape[:2], -1))
            if record is not None:
                record(q, y)
            res[i] = (y[0, ..., 0].astype(np.float32) - z_out) * s_out
        return res
    return fn
