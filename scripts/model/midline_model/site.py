"""A hospital's own models from its contoured cases, in one command: `make model`'s recipe
(pipeline.py) on a BraTS-style folder (loaders.py) instead of phantoms.

    python -m midline_model.site --cases /data/dmg --work build/site --out site-models --version 2.0.0
        [--seq T2 ...] [--steps N] [--seed 0] [--test-share 0.2]

The case folders are split by case, deterministically by --seed: --test-share of them (at least
one) held out for the results and never trained on, one in ten (at least one) for validation, the
rest for training; the work folder keeps the split (split.json) and a later run with another
split stops. Then, for every sequence the cases hold: tiles (T2 2.5D, as the recipe), training
(pipeline.STEPS), int8 export, evaluation through the firmware's tiling on the held-out cases
(float and int8; no non-learned baseline, which needs the phantoms' atlas), and the bundle in
--out/dmg-<seq> with `clinical_use: false` and a model card that names the cases. A sequence
that some case lacks is trained on the cases that have it. Every step skips what its output
already holds, so an interrupted run resumes; a bundle is not overwritten by an equal or older
--version. The bundles reach the boxes as signed OTA targets (ota/README.md) after the site's
own validation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from midline_model import evaluate, export, infer, loaders, phantom, pipeline, report, train, trainset

VAL_SHARE = 0.1


def split(folders: list[Path], seed: int, test_share: float) -> dict:
    """Case names for training, validation and test: disjoint, every one at least one case."""
    names = [f.name for f in folders]
    if len(names) < 3:
        raise SystemExit(f"site: {len(names)} case folders; training, validation and test need one each at least")
    order = [names[i] for i in np.random.default_rng([seed, 0x534954]).permutation(len(names))]
    n_test = max(1, round(test_share * len(names)))
    n_val = max(1, round(VAL_SHARE * len(names)))
    if n_test + n_val >= len(names):
        n_test, n_val = 1, 1
    return {"seed": seed, "test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def _tiles(work: Path, seq: str, part: str, folders: list[Path], seed: int) -> Path:
    c, mm = pipeline.CONTEXT.get(seq, (0, 0.0))
    out = work / f"{part}-{seq.lower()}{trainset.context_tag(c, mm)}.npz"
    if not out.exists():
        tmp = out.with_suffix(".tmp.npz")
        trainset.save_case_tiles(tmp, {seq: trainset.case_tiles(folders, seq, seed, c, mm)}, c, mm)
        tmp.replace(out)
    return out


def _evaluate(seq: str, run: Path, tflite: Path, folders: list[Path], out: Path) -> Path:
    if out.exists():
        return out
    g, info = export.load_generator(run)
    c = (info["config"]["channels"] - 1) // 2
    fns = {"float": infer.keras_tiles(g), "int8": infer.tflite_tiles(tflite)}

    def cases():
        for f in folders:
            k = loaders.load_brats_case(f, seq)
            yield {"case": k.name}, k.real, k.gtv, k.spacing, None
    res = evaluate.evaluate_cases(seq, fns, evaluate.plan(seq, c, info.get("context_mm", 0.0)),
                                  {"threshold": 0.5, "min_component_mm3": 50}, cases(), None)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return out


def train_and_ship(seq: str, cases: Path, parts: dict, work: Path, out: Path, version: str,
                   steps: int, seed: int, train_extra: list[str]) -> dict | None:
    """One sequence from the split's case folders to its bundle; None when a part has no case
    with this sequence."""
    have = {p: [cases / n for n in parts[p] if loaders.has_sequence(cases / n, seq)]
            for p in ("train", "val", "test")}
    if not all(have.values()):
        print(f"site: {seq}: no case with it in {', '.join(p for p, f in have.items() if not f)}; not trained")
        return None
    train_tiles = _tiles(work, seq, "train", have["train"], seed)
    val_tiles = _tiles(work, seq, "val", have["val"], seed)
    run = work / f"dmg-{seq.lower()}"
    if not (run / "train.json").exists():
        train.main(["--seq", seq, "--train", str(train_tiles), "--val", str(val_tiles), "--out", str(run),
                    "--steps", str(steps), "--resume", *train_extra])
    staging = run / "bundle"
    if not (staging / "model.tflite").exists():
        export.export(seq, run, train_tiles, staging, version, None)
    ev = _evaluate(seq, run, staging / "model.tflite", have["test"], run / "eval.json")
    dest = out / f"dmg-{seq.lower()}"
    if pipeline.already_shipped(dest, staging, version):
        return json.loads((dest / "model.json").read_text())
    pipeline.check_version(dest, version)
    info = json.loads((run / "train.json").read_text())
    note = (f"contoured cases of the site ({cases.name}): trained on {info['train_tiles']} tiles of "
            f"{report.counted(len(have['train']), 'case')}, validated on {len(have['val'])}, tested on "
            f"{report.counted(len(have['test']), 'held-out case')}")
    meta = export.export(seq, run, train_tiles, dest, version, ev, data_note=note)
    site = {"cases": cases.name, "seed": seed, **{p: [f.name for f in have[p]] for p in have}}
    (dest / "MODEL_CARD.md").write_text(report.model_card(meta, json.loads(ev.read_text()), info, site=site))
    return meta


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.site", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, required=True, help="BraTS-style folder: one folder per case")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="where the bundles go (dmg-t2, ...)")
    p.add_argument("--version", required=True)
    p.add_argument("--seq", action="append", choices=phantom.SEQUENCES)
    p.add_argument("--steps", type=int, help="training steps of every model (default: pipeline.STEPS)")
    p.add_argument("--seed", type=int, default=0, help="the split's and the tiles' seed")
    p.add_argument("--test-share", type=float, default=0.2)
    p.add_argument("--train-arg", action="append", default=[],
                   help="one more argument for train.py, e.g. --train-arg=--batch=8 (repeatable)")
    args = p.parse_args(argv)
    cases = args.cases.resolve()
    parts = split(loaders.brats_folders(cases), args.seed, args.test_share)
    pipeline.check_record(args.work / "split.json", {"cases": str(cases), **parts}, "split")
    shipped = {}
    for seq in args.seq or phantom.SEQUENCES:
        meta = train_and_ship(seq, cases, parts, args.work, args.out, args.version,
                              args.steps or pipeline.STEPS[seq], args.seed, args.train_arg)
        if meta:
            t = meta["metrics"]["test"]
            shipped[meta["name"]] = t
            print(f"site: {meta['name']} {meta['version']}: int8 Dice {t['dice_int8']:.3f} "
                  f"({t['dice_int8_ci95'][0]:.3f}-{t['dice_int8_ci95'][1]:.3f}) on {t['subjects']} held-out cases, "
                  f"float {t['dice_float']:.3f}", flush=True)
    if not shipped:
        raise SystemExit("site: no sequence had cases in every part of the split")
    print(f"site: wrote {', '.join(shipped)} to {args.out}")


if __name__ == "__main__":
    main()
