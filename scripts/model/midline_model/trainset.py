"""Training tiles from phantom studies, made the way the firmware will see them.

Each study is acquired at its drawn native resolution (only the slices training uses: those whose
slab meets the tumour, and a few others for negatives), rescaled to real values, normalised per
series (percentile-zscore), resampled in-plane to each model scale, and cut into tiles. Seeds:
training 1000-1999, validation 2000-2099, test 3000-3999; the committed test study is seed 4.

    python -m midline_model.trainset --first 1000 --count 64 --out build/train.npz
    python -m midline_model.trainset --brats /data/cases --out build/hospital.npz

A hospital's tiles come from a BraTS-style folder (see loaders.py); `python -m midline_model.site`
runs the whole recipe on such a folder in one command.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from midline_model import data, infer, phantom

TRAIN_SEEDS = range(1000, 2000)
VAL_SEEDS = range(2000, 2100)
TEST_SEEDS = range(3000, 4000)


def _keep_factory(rng: np.random.Generator, negatives: int, context: int = 0, context_mm: float = 0.0):
    """The slices a training study acquires: those near the tumour and `negatives` others, and
    for 2.5D tiles (context c, channels context_mm apart) the slices their channels hold.
    keep.channels gets, per series acquired, the (slice, channel slices) pairs to cut tiles from,
    indexed in the kept slices."""
    def keep(positions: np.ndarray, normal: np.ndarray, t: phantom.TumourParams) -> np.ndarray:
        r = (3 * t.volume_cm3 * 1000 / (4 * np.pi)) ** (1 / 3)
        d = np.abs((positions - np.asarray(t.centre_lps)) @ normal)
        near = np.nonzero(d < 1.6 * r * (1 + t.irregularity) + 4)[0]
        if len(positions) > 1:  # thin (3D) slices: every third is enough, neighbours look alike
            step = max(1, round(3.0 / np.linalg.norm(positions[1] - positions[0])))
            near = near[::step]
        far = np.setdiff1d(np.arange(len(positions)), near)
        extra = rng.choice(far, size=min(negatives, len(far)), replace=False) if len(far) else []
        centres = np.sort(np.concatenate([near, np.asarray(extra, int)]))
        if not context:
            keep.channels.append(None)
            return centres
        step = infer.context_step(_slice_mm(positions), context_mm)
        chans = [infer.context_slices(k, len(positions), context, step) for k in centres]
        kept = np.unique(np.concatenate(chans))
        keep.channels.append([(int(np.searchsorted(kept, k)), np.searchsorted(kept, ch))
                              for k, ch in zip(centres, chans)])
        return kept
    keep.channels = []
    return keep


def _slice_mm(positions: np.ndarray) -> float:
    return float(np.linalg.norm(positions[1] - positions[0])) if len(positions) > 1 else 1.0


def at_scale(real: np.ndarray, gtv: np.ndarray, spacing: tuple[float, float],
             scale: float, percentiles=(0.5, 99.5)) -> tuple[np.ndarray, np.ndarray, float]:
    """Normalised image and GTV of a series resampled to `scale` mm, and the tile padding."""
    norm = data.fit_normalization(real, *percentiles)
    img = data.resample_inplane(norm.apply(real), spacing, scale)
    mask = data.resample_inplane(gtv.astype(np.float32), spacing, scale) >= 0.5
    return img, mask, data.pad_value(norm)


def series_tiles(real: np.ndarray, gtv: np.ndarray, spacing: tuple[float, float],
                 rng: np.random.Generator, scales=(1.0, 2.0), size: int = 128,
                 tiles_per_slice: int = 2, percentiles=(0.5, 99.5), context: int = 0,
                 channels=None, context_mm: float = 0.0, slice_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Training tiles of one series (real values, GTV, in-plane spacing): (images, masks), images
    (N, size, size), or (N, size, size, 2c+1) for 2.5D context c. channels: the (slice, channel
    slices) pairs to cut (default: every slice, its channels context_mm apart for slices
    slice_mm apart, mirrored at the series' ends)."""
    if context and channels is None:
        step = infer.context_step(slice_mm, context_mm)
        channels = [(k, infer.context_slices(k, len(real), context, step)) for k in range(len(real))]
    imgs, masks = [], []
    for scale in scales:
        img, mask, fill = at_scale(real, gtv, spacing, scale, percentiles)
        for k, chans in channels or [(k, None) for k in range(img.shape[0])]:
            for top, left in _crops(mask[k], img.shape[1:], size, tiles_per_slice, rng):
                imgs.append(data.crop_tile(img, k, chans, top, left, size, fill))
                masks.append(data.crop(mask[k].astype(np.float32), top, left, size, 0) > 0.5)
    return np.asarray(imgs, np.float16), np.asarray(masks, np.uint8)


def study_tiles(seed: int, negatives: int = 3, small: bool = False, context: int = 0,
                context_mm: float = 0.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per sequence: (images, masks), each (N, 128, 128) (2.5D: images (N, 128, 128, 2c+1)),
    float16 and uint8. `small` uses the downsized phantom (tests)."""
    rng = np.random.default_rng([seed, 0x545249])  # "TRI": tile sampling, apart from the phantom
    keep = None if small else _keep_factory(rng, negatives, context, context_mm)
    study = phantom.generate(seed, small=small, keep=keep, axial_only=True)
    out = {}
    for i, (seq, s) in enumerate(study.series.items()):
        out[seq] = series_tiles(s.real(), s.gtv, tuple(s.spec.pixel_spacing), rng,
                                percentiles=data.NORMALIZATION[seq], context=context,
                                channels=keep.channels[i] if keep else None, context_mm=context_mm,
                                slice_mm=s.spec.slice_spacing)
    return out


def case_tiles(folders: list[Path], seq: str, seed: int = 0, context: int = 0,
               context_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence's tiles from a hospital's BraTS-style case folders (see loaders.py): images,
    masks, and each tile's case (its index in folders)."""
    from midline_model import loaders

    rng = np.random.default_rng([seed, 0x545249, phantom.SEQUENCES.index(seq)])
    imgs, masks, study = [], [], []
    for i, folder in enumerate(folders):
        c = loaders.load_brats_case(folder, seq)
        img, m = series_tiles(c.real, c.gtv, c.spacing[1:], rng, percentiles=data.NORMALIZATION[seq],
                              context=context, context_mm=context_mm, slice_mm=c.spacing[0])
        imgs.append(img)
        masks.append(m)
        study.append(np.full(len(img), i, np.int32))
    return np.concatenate(imgs), np.concatenate(masks), np.concatenate(study)


def save_case_tiles(out: Path, tiles: dict, context: int, context_mm: float) -> None:
    """case_tiles' output per sequence as a tile file train.py reads."""
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **{f"{seq}_{n}": v for seq, arrays in tiles.items()
                     for n, v in zip(("image", "mask", "seed"), arrays)},
             context_mm=np.float64(context_mm if context else 0.0))


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


def context_tag(context: int, context_mm: float) -> str:
    """What names 2.5D tile files apart from 2D ones and from each other: "-c1-5mm", "" for 2D."""
    if not context:
        return ""
    return f"-c{context}" + (f"-{context_mm:g}mm" if context_mm else "")


def seed_tiles(seed: int, cache: Path | None, small: bool = False, context: int = 0,
               context_mm: float = 0.0) -> dict:
    """One study's tiles, from the per-seed cache when present (an interrupted build resumes). A
    cached file made with other normalisation percentiles than data.NORMALIZATION, or 2.5D tiles
    made before context slices were mirrored at the series' ends, is made anew."""
    name = f"seed{seed}{'-small' if small else ''}{context_tag(context, context_mm)}.npz"
    path = cache / name if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            if all(f"{seq}_norm" in z and tuple(z[f"{seq}_norm"]) == data.NORMALIZATION[seq]
                   for seq in phantom.SEQUENCES) and (not context or "context_mirrored" in z):
                return {seq: (z[f"{seq}_image"], z[f"{seq}_mask"]) for seq in phantom.SEQUENCES}
    tiles = study_tiles(seed, small=small, context=context, context_mm=context_mm)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f"{seq}_{n}": v for seq, (img, m) in tiles.items()
                         for n, v in (("image", img), ("mask", m))},
                 **{f"{seq}_norm": np.asarray(data.NORMALIZATION[seq]) for seq in tiles},
                 **({"context_mirrored": np.asarray(True)} if context else {}))
        tmp.replace(path)
    return tiles


def build(seeds, out: Path, small: bool = False, cache: Path | None = None, context: int = 0,
          context_mm: float = 0.0) -> None:
    """All seeds' tiles in one file; per-seed results are cached in `cache` (default: a
    `tiles/` folder beside `out`). context c > 0 makes 2.5D tiles (2c+1 slices as channels,
    context_mm apart, or adjacent slices for 0); the file records context_mm for training."""
    cache = cache or out.parent / "tiles"
    per_seq: dict[str, list] = {s: [[], [], [], []] for s in phantom.SEQUENCES}
    t0 = time.time()
    for i, seed in enumerate(seeds):
        enhancement = phantom.tumour_of(seed).enhancement
        for seq, (imgs, masks) in seed_tiles(seed, cache, small, context, context_mm).items():
            per_seq[seq][0].append(imgs)
            per_seq[seq][1].append(masks)
            per_seq[seq][2].append(np.full(len(imgs), seed, np.int32))
            per_seq[seq][3].append(np.full(len(imgs), enhancement))
        print(f"trainset: seed {seed} ({i + 1}/{len(seeds)}) {time.time() - t0:.0f}s", flush=True)
    arrays = {}
    for seq, (imgs, masks, sub, enh) in per_seq.items():
        arrays[f"{seq}_image"] = np.concatenate(imgs)
        arrays[f"{seq}_mask"] = np.concatenate(masks)
        arrays[f"{seq}_seed"] = np.concatenate(sub)
        arrays[f"{seq}_enhancement"] = np.concatenate(enh)  # the tumour's pattern on T1C
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays, context_mm=np.float64(context_mm if context else 0.0))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.trainset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--first", type=int, help="first phantom seed")
    p.add_argument("--count", type=int, help="number of phantom studies")
    p.add_argument("--brats", type=Path, help="a BraTS-style folder of real cases instead of phantoms")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--context", type=int, default=0,
                   help="2.5D: slices on each side of a tile's slice given as extra channels")
    p.add_argument("--context-mm", type=float, default=0.0,
                   help="2.5D: distance in mm between a tile's channels (0: adjacent slices)")
    args = p.parse_args(argv)
    if args.brats:
        from midline_model import loaders
        folders = loaders.brats_folders(args.brats)
        tiles = {seq: case_tiles(folders, seq, context=args.context, context_mm=args.context_mm)
                 for seq in phantom.SEQUENCES if all(loaders.has_sequence(f, seq) for f in folders)}
        if not tiles:
            raise SystemExit(f"trainset: no sequence is present in every case of {args.brats}")
        save_case_tiles(args.out, tiles, args.context, args.context_mm)
    elif args.first is not None and args.count:
        build(range(args.first, args.first + args.count), args.out, context=args.context,
              context_mm=args.context_mm)
    else:
        p.error("give --first and --count (phantoms) or --brats DIR")


if __name__ == "__main__":
    main()
