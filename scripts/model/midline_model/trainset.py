"""Training tiles from phantom studies, made the way the firmware will see them.

Each study is acquired at its drawn native resolution (only the slices training uses: those whose
slab meets the tumour, and a few others for negatives), rescaled to real values, normalised per
series (percentile-zscore), resampled in-plane to each model scale, and cut into tiles. Seeds:
training 1000-1999, validation 2000-2099, test 3000-3999; the committed test study is seed 4.

    python -m midline_model.trainset --first 1000 --count 96 --out build/train.npz
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from midline_model import data, phantom

TRAIN_SEEDS = range(1000, 2000)
VAL_SEEDS = range(2000, 2100)
TEST_SEEDS = range(3000, 4000)


def _keep_factory(rng: np.random.Generator, negatives: int):
    def keep(positions: np.ndarray, normal: np.ndarray, t: phantom.TumourParams) -> np.ndarray:
        r = (3 * t.volume_cm3 * 1000 / (4 * np.pi)) ** (1 / 3)
        d = np.abs((positions - np.asarray(t.centre_lps)) @ normal)
        near = np.nonzero(d < 1.6 * r * (1 + t.irregularity) + 4)[0]
        if len(positions) > 1:  # thin (3D) slices: every third is enough, neighbours look alike
            step = max(1, round(3.0 / np.linalg.norm(positions[1] - positions[0])))
            near = near[::step]
        far = np.setdiff1d(np.arange(len(positions)), near)
        extra = rng.choice(far, size=min(negatives, len(far)), replace=False) if len(far) else []
        return np.sort(np.concatenate([near, np.asarray(extra, int)]))
    return keep


def series_at_scale(s: phantom.Series, scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Normalised image and GTV resampled to `scale` mm, and the tile padding value."""
    slope, intercept = s.rescale
    real = s.pixels.astype(np.float32) * slope + intercept
    norm = data.fit_normalization(real)
    img = data.resample_inplane(norm.apply(real), tuple(s.spec.pixel_spacing), scale)
    gtv = data.resample_inplane(s.gtv.astype(np.float32), tuple(s.spec.pixel_spacing), scale) >= 0.5
    return img, gtv, data.pad_value(norm)


def study_tiles(seed: int, scales=(1.0, 2.0), size: int = 128, negatives: int = 3,
                tiles_per_slice: int = 2, small: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per sequence: (images, masks), each (N, size, size), float16 and uint8. `small` uses the
    downsized phantom (tests)."""
    rng = np.random.default_rng([seed, 0x545249])  # "TRI": tile sampling, apart from the phantom
    study = phantom.generate(seed, small=small, keep=None if small else _keep_factory(rng, negatives))
    out = {}
    for seq, s in study.series.items():
        imgs, masks = [], []
        for scale in scales:
            img, gtv, fill = series_at_scale(s, scale)
            for k in range(img.shape[0]):
                for top, left in _crops(gtv[k], img.shape[1:], size, tiles_per_slice, rng):
                    imgs.append(data.crop(img[k], top, left, size, fill))
                    masks.append(data.crop(gtv[k].astype(np.float32), top, left, size, 0) > 0.5)
        out[seq] = (np.asarray(imgs, np.float16), np.asarray(masks, np.uint8))
    return out


def _crops(mask: np.ndarray, shape, size: int, n: int, rng: np.random.Generator):
    """Random windows: where the slice shows tumour, each window contains a random tumour pixel;
    elsewhere anywhere. A slice smaller than a tile gets one window, centred, as the tiler pads."""
    h, w = shape
    if h <= size and w <= size:
        return [((h - size) // 2, (w - size) // 2)]
    pts = np.argwhere(mask)
    out = []
    for _ in range(n):
        if len(pts):
            r, c = pts[rng.integers(len(pts))]
            top = int(r) - int(rng.integers(16, size - 16))
            left = int(c) - int(rng.integers(16, size - 16))
        else:
            top, left = int(rng.integers(0, max(1, h - size + 1))), int(rng.integers(0, max(1, w - size + 1)))
        out.append((int(np.clip(top, min(0, h - size), max(0, h - size))),
                    int(np.clip(left, min(0, w - size), max(0, w - size)))))
    return out


def build(seeds, out: Path, small: bool = False) -> None:
    per_seq: dict[str, list] = {s: [[], [], []] for s in phantom.SEQUENCES}
    t0 = time.time()
    for i, seed in enumerate(seeds):
        for seq, (imgs, masks) in study_tiles(seed, small=small).items():
            per_seq[seq][0].append(imgs)
            per_seq[seq][1].append(masks)
            per_seq[seq][2].append(np.full(len(imgs), seed, np.int32))
        print(f"trainset: seed {seed} ({i + 1}/{len(seeds)}) {time.time() - t0:.0f}s", flush=True)
    arrays = {}
    for seq, (imgs, masks, sub) in per_seq.items():
        arrays[f"{seq}_image"] = np.concatenate(imgs)
        arrays[f"{seq}_mask"] = np.concatenate(masks)
        arrays[f"{seq}_seed"] = np.concatenate(sub)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.trainset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    build(range(args.first, args.first + args.count), args.out)


if __name__ == "__main__":
    main()
