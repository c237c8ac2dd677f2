"""Evaluation through the firmware's own tiling, on held-out phantom studies.

    python -m midline_model.evaluate --seq T2 --keras build/dmg-t2 --tflite build/dmg-t2/model.tflite \
        --cases build/cases --first 3000 --count 20 --out build/dmg-t2/eval.json

Each test study (seeds 3000 and up, never used in training) is generated at its native
resolution, run through `infer.run_series` and `infer.postprocess` exactly as the box runs a
series, and compared with its ground-truth GTV: Dice (with a 95% bootstrap interval over
subjects), surface Dice at 2 mm, in-plane HD95, volume error and lesion-level sensitivity, for the
float model and the int8 model. Beside them, a non-learned baseline on the same studies: an
intensity threshold on the normalised series inside the atlas brainstem and thalamus region
(dilated 10 mm), largest component; its one threshold is tuned on validation studies.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from midline_model import anatomy, data, infer, metrics, phantom

BASELINE_DIRECTION = {"T2": 1, "FLAIR": 1, "T1C": -1}  # lesion brighter (+1) or darker (-1)


def case(seed: int, cache: Path, small: bool = False) -> dict:
    """A test study as arrays: per sequence the real values, GTV, spacing and atlas region.
    `small` uses the downsized phantom (tests)."""
    path = cache / f"seed{seed}{'-small' if small else ''}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    study = phantom.generate(seed, small=small)
    out = {}
    for seq, s in study.series.items():
        arrays = [s.real(), s.gtv, _atlas_region(study, s)]
        spacing = [s.spec.slice_spacing, *s.spec.pixel_spacing]
        if s.spec.plane == "sagittal":
            arrays, spacing = [sagittal_to_axial(a) for a in arrays], [
                s.spec.pixel_spacing[0], s.spec.pixel_spacing[1], s.spec.slice_spacing]
        out[f"{seq}_real"], out[f"{seq}_gtv"], out[f"{seq}_region"] = arrays
        out[f"{seq}_spacing"] = np.array(spacing, np.float64)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **out)
    return out


def sagittal_to_axial(vol: np.ndarray) -> np.ndarray:
    """A sagittal series (ImageOrientationPatient 0,1,0,0,0,-1: rows run down, columns to the
    back, slices to the patient's right) as axial slices in the model's orientation (slices
    upwards, rows to the back, columns to the left). An exact permutation, no resampling: the
    firmware reformats 3D series the same way before the model sees them."""
    return np.ascontiguousarray(np.transpose(vol[::-1, ::-1, :], (1, 2, 0)))


@functools.lru_cache(maxsize=1)
def _dilated_sites() -> np.ndarray:
    """Pons and thalami, dilated 10 mm (10 voxels of the 1 mm atlas grid)."""
    a = anatomy.load()
    return ndimage.binary_dilation(a.pons | a.thalamus_l | a.thalamus_r, iterations=10)


def _atlas_region(study: phantom.Study, s: phantom.Series) -> np.ndarray:
    """Pons and thalami, dilated 10 mm, on the series grid through the head's pose: what an
    atlas registration would give a baseline."""
    a = anatomy.load()
    region = _dilated_sites()
    tilt = phantom._rotation(study.head_tilt_deg)
    pivot = np.asarray(study.tumour.centre_lps)
    row, col = s.orientation
    dr, dc = s.spec.pixel_spacing
    jj, ii = np.meshgrid(np.arange(s.spec.rows), np.arange(s.spec.columns), indexing="ij")
    out = np.zeros(s.gtv.shape, bool)
    for k, pos in enumerate(s.positions):
        p = pos + ii[..., None] * dc * row + jj[..., None] * dr * col
        q = (p - pivot) @ tilt + pivot
        idx = np.round(a.to_index(q)).astype(int)
        ok = np.all((idx >= 0) & (idx < np.array(a.shape)), axis=-1)
        vals = np.zeros(ok.shape, bool)
        vals[ok] = region[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        out[k] = vals
    return out


def baseline(real: np.ndarray, region: np.ndarray, seq: str, tau: float) -> np.ndarray:
    return _baseline_z(_normalized(real, seq) * BASELINE_DIRECTION[seq], region, tau)


def _normalized(real: np.ndarray, seq: str) -> np.ndarray:
    """The series as the sequence's model sees it (data.NORMALIZATION), for the baseline too."""
    return data.fit_normalization(real, *data.NORMALIZATION[seq]).apply(real)


def _baseline_z(z: np.ndarray, region: np.ndarray, tau: float) -> np.ndarray:
    m = (z > tau) & region
    lab, n = ndimage.label(m)
    if n == 0:
        return m
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    m = lab == (1 + int(np.argmax(sizes)))
    for k in range(m.shape[0]):
        m[k] = ndimage.binary_fill_holes(m[k])
    return m


def tune_baseline(seq: str, seeds, cache: Path) -> float:
    """The threshold that maximises mean Dice on validation studies."""
    cases = [case(s, cache) for s in seeds]
    zs = [_normalized(c[f"{seq}_real"], seq) * BASELINE_DIRECTION[seq] for c in cases]
    best = (-1.0, 0.0)
    for tau in np.arange(-1.0, 3.01, 0.2):
        d = np.mean([metrics.dice(_baseline_z(z, c[f"{seq}_region"], tau), c[f"{seq}_gtv"])
                     for z, c in zip(zs, cases)])
        best = max(best, (float(d), float(round(tau, 2))))
    return best[1]


def evaluate(seq: str, tile_fns: dict, plan: infer.Plan, post: dict, seeds, cache: Path,
             tau: float) -> dict:
    """The phantom test studies of `seeds`, with the baseline at threshold tau."""
    def studies():
        for seed in seeds:
            c = case(seed, cache)
            yield ({"seed": seed}, c[f"{seq}_real"], c[f"{seq}_gtv"], tuple(c[f"{seq}_spacing"]),
                   c[f"{seq}_region"])
    return evaluate_cases(seq, tile_fns, plan, post, studies(), tau)


def evaluate_cases(seq: str, tile_fns: dict, plan: infer.Plan, post: dict, cases,
                   tau: float | None) -> dict:
    """Each case (its identity as a dict, real values, GTV, spacing, atlas region or None) run
    through the tiled pipeline by every tile function; the baseline beside them when tau is given
    (it needs the atlas region, which only phantoms have)."""
    per = []
    for ident, real, gtv, spacing, region in cases:
        gtv = gtv.astype(bool)
        row = ident | {"gtv_cm3": float(gtv.sum() * np.prod(spacing) / 1000)}
        for name, fn in tile_fns.items():
            prob, stats = infer.run_series(real, spacing, fn, plan)
            pred = infer.postprocess(prob, post["threshold"], float(np.prod(spacing)),
                                     post["min_component_mm3"])
            row[name] = metrics.all_metrics(pred, gtv, spacing) | {"tiles": stats.tiles_run}
        if tau is not None:
            row["baseline"] = metrics.all_metrics(baseline(real, region, seq, tau), gtv, spacing)
        per.append(row)
        print(json.dumps(ident | {k: round(v["dice"], 4) for k, v in row.items()
                                  if isinstance(v, dict)}), flush=True)
    return {"sequence": seq, "subjects": len(per), "baseline_threshold": tau,
            "summary": summarize(per, [*tile_fns, *(["baseline"] if tau is not None else [])]),
            "per_subject": per}


def summarize(per: list[dict], names) -> dict:
    out = {}
    for name in names:
        rows = [r[name] for r in per]
        d = [r["dice"] for r in rows]
        hd = [r["hd95_inplane_mm"] for r in rows]
        out[name] = {
            "dice": float(np.mean(d)), "dice_ci95": metrics.bootstrap_ci(d),
            "dice_min": float(np.min(d)),
            "surface_dice_2mm": float(np.mean([r["surface_dice_2mm"] for r in rows])),
            # median: a subject with an empty prediction has an infinite HD95
            "hd95_inplane_mm": float(np.median(hd)),
            "volume_error_pct": float(np.mean(np.abs([r["volume_error_pct"] for r in rows]))),
            "lesion_sensitivity": float(sum(r["lesions_found"] for r in rows) /
                                        max(1, sum(r["lesions"] for r in rows))),
        }
    return out


def plan(seq: str, context: int = 0, context_mm: float = 0.0) -> infer.Plan:
    """The tiled inference a sequence's model is evaluated with: the plan its bundle's
    model.json gives the firmware (infer.bundle_plan)."""
    return infer.Plan.from_bundle(infer.bundle_plan(seq, 2 * context + 1, context_mm))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", required=True)
    p.add_argument("--keras", type=Path, help="training folder with generator.weights.h5 and train.json")
    p.add_argument("--tflite", type=Path)
    p.add_argument("--cases", type=Path, required=True)
    p.add_argument("--first", type=int, default=3000)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--val-first", type=int, default=2000)
    p.add_argument("--val-count", type=int, default=4)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    fns, context, context_mm = {}, 0, 0.0
    if args.keras:
        from midline_model import model as M
        info = json.loads((args.keras / "train.json").read_text())
        cfg = info["config"]
        g = M.generator(M.GeneratorConfig(**{**cfg, "widths": tuple(cfg["widths"])}))
        g.load_weights(str(args.keras / "generator.weights.h5"))
        fns["float"] = infer.keras_tiles(g)
        context, context_mm = (cfg["channels"] - 1) // 2, info.get("context_mm", 0.0)
    if args.tflite:
        fns["int8"] = infer.tflite_tiles(args.tflite)
        meta = args.tflite.parent / "model.json"
        if meta.exists():
            inp = json.loads(meta.read_text())["input"]
            context, context_mm = inp["context_slices"], inp.get("context_mm", 0.0)
    tau = tune_baseline(args.seq, range(args.val_first, args.val_first + args.val_count), args.cases)
    res = evaluate(args.seq, fns, plan(args.seq, context, context_mm),
                   {"threshold": 0.5, "min_component_mm3": 50},
                   range(args.first, args.first + args.count), args.cases, tau)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["summary"], indent=2))


if __name__ == "__main__":
    main()
