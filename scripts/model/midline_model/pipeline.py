"""From nothing to the three shipped bundles: data, training, evaluation, export, results.

    python -m midline_model.pipeline --work ../../build/model --models ../../models [--seq T2 ...]
        [--steps N] [--train-count N] [--val-count N] [--ablation]

The recipe (each shipped bundle's MODEL_CARD.md says how that bundle was made, some by earlier
recipes): tiles of --train-count training studies from seed 1000 and --val-count validation
studies from seed 2000 (T2's 2.5D, CONTEXT), then per sequence STEPS[seq] steps of batch 16
(--steps sets one count for all) keeping the moving average of the generator's weights at the
last step, each model evaluated and shipped with its sequence's ROI gate (data.ROI_GATE: none for
T1C), and the ablation at the T2 model's budget, on the T2 model's tiles.
The counts' defaults are main's and STEPS; a run records what it used in the work folder's
recipe.json.

Every step writes its output under --work and is skipped when that output exists, so an
interrupted run resumes where it stopped (training itself resumes from its checkpoint). Seeds fix
everything: the same command makes the same data, the same weights up to floating-point order on
this machine, and the same numbers. The numbers written into model.json, MODEL_CARD.md and
RESULTS.md are the ones the evaluation printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from midline_model import data, evaluate, export, infer, report, train, trainset


# 2.5D context per sequence: (slices on each side, mm between a tile's channels). T2 sees the
# anatomy 5 mm above and below (its training stacks are 3-6 mm apart): a necrotic core that looks
# like CSF within one slice is told apart by its neighbours (RESULTS.md). The others are 2D. A
# share of its tiles is trained with alike neighbours (train --same-neighbours).
CONTEXT = {"T2": (1, 5.0)}


def tiles(work: Path, seq: str, split: str) -> Path:
    """The tile file a sequence trains ("train") or validates ("val") on."""
    return work / f"{split}{trainset.context_tag(*CONTEXT.get(seq, (0, 0.0)))}.npz"


def _build_tiles(work: Path, seq: str, train_count: int, val_count: int) -> None:
    c, mm = CONTEXT.get(seq, (0, 0.0))
    for split, first, count in (("val", 2000, val_count), ("train", 1000, train_count)):
        if not tiles(work, seq, split).exists():
            trainset.build(range(first, first + count), tiles(work, seq, split), cache=work / "tiles",
                           context=c, context_mm=mm)


def _train(seq: str, work: Path, steps: int, extra: list[str], name: str) -> Path:
    out = work / name
    if not (out / "train.json").exists():
        train.main(["--seq", seq, "--train", str(tiles(work, seq, "train")), "--val", str(tiles(work, seq, "val")),
                    "--out", str(out), "--steps", str(steps), "--resume", *extra])
    return out


def _evaluate(seq: str, run: Path, tflite: Path | None, work: Path, count: int) -> Path:
    path = run / ("eval.json" if tflite else "eval_float.json")
    if path.exists():
        return path
    args = ["--seq", seq, "--keras", str(run), "--cases", str(work / "cases"),
            "--count", str(count), "--out", str(path)]
    if tflite:
        args += ["--tflite", str(tflite)]
    evaluate.main(args)
    return path


# Training steps per sequence (batch 16).
STEPS = {"T2": 2400, "FLAIR": 1000, "T1C": 2400}


def ship(seq: str, work: Path, models: Path, steps: int, test_count: int, version: str) -> dict:
    run = _train(seq, work, steps, [], f"dmg-{seq.lower()}")
    staging = run / "bundle"
    if not (staging / "model.tflite").exists():
        export.export(seq, run, tiles(work, seq, "train"), staging, version, None)
    ev = _evaluate(seq, run, staging / "model.tflite", work, test_count)
    dest = models / f"dmg-{seq.lower()}"
    if already_shipped(dest, staging, version):
        return json.loads((dest / "model.json").read_text())
    check_version(dest, version)
    meta = export.export(seq, run, tiles(work, seq, "train"), dest, version, ev)
    (dest / "MODEL_CARD.md").write_text(report.model_card(meta, json.loads(ev.read_text()),
                                                          json.loads((run / "train.json").read_text())))
    return meta


ABLATION = [
    ("plain U-Net", "abl-plain", ["--no-attention", "--no-multiscale", "--no-adversarial"]),
    ("+ attention", "abl-att", ["--no-multiscale", "--no-adversarial"]),
    ("+ multi-scale", "abl-att-ms", ["--no-adversarial"]),
    ("+ adversarial (the shipped design)", "dmg-t2", []),
]


def ablation(work: Path, steps: int, test_count: int) -> list[dict]:
    rows = []
    for label, name, extra in ABLATION:
        run = _train("T2", work, steps, extra, name)
        ev = json.loads(_evaluate("T2", run, None, work, test_count).read_text())
        rows.append({"label": label, "run": name, "train": json.loads((run / "train.json").read_text()),
                     "eval": ev["summary"]["float"], "subjects": ev["subjects"],
                     "log": [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]})
    return rows


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("-")[0].split("."))


def check_version(dest: Path, version: str) -> None:
    """A bundle already in dest with this version or a later one is not overwritten: boxes
    update only to higher versions (ota), and a release must say what changed."""
    meta = dest / "model.json"
    if meta.exists():
        have = json.loads(meta.read_text())["version"]
        if _semver(version) <= _semver(have):
            raise SystemExit(f"pipeline: {dest} holds version {have}; ship with --version above it")


def already_shipped(dest: Path, staging: Path, version: str) -> bool:
    """True when an earlier pass of this run already shipped staging's model to dest as version
    (a resumed run skips it instead of refusing its own release)."""
    meta, model = dest / "model.json", dest / "model.tflite"
    return (meta.exists() and model.exists() and (dest / "MODEL_CARD.md").exists()
            and json.loads(meta.read_text())["version"] == version
            and model.read_bytes() == (staging / "model.tflite").read_bytes())


def _train_defaults():
    return train.parser().parse_args(["--seq", "T2", "--train", ".", "--val", ".", "--out", "."])


def _kept(d) -> str:
    """The training's rule for the generator it keeps, from its defaults d (part of the recipe)."""
    return f"moving average of the weights (decay {d.ema}) at the last step"


def check_record(path: Path, record: dict, what: str) -> None:
    """Every step skips what its output already holds, so a work folder must not mix runs: the
    first run records its `what` (recipe, split) in path, and a later run with another stops."""
    if path.exists():
        old = json.loads(path.read_text())
        if old != record:
            raise SystemExit(f"{path.parent} was made with another {what} ({old}, not {record}): use another --work")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--results", type=Path, default=Path("RESULTS.md"))
    p.add_argument("--seq", action="append", choices=["T2", "FLAIR", "T1C"])
    p.add_argument("--steps", type=int, help="training steps of every model (default: STEPS)")
    # 66 training studies: with 33, the 2.5D T2 and the T1C missed whole lesions or half of them on
    # a few test studies, differently from one training run to the next (README).
    p.add_argument("--train-count", type=int, default=66)
    p.add_argument("--val-count", type=int, default=8)
    p.add_argument("--test-count", type=int, default=20)
    p.add_argument("--ablation", action="store_true")
    p.add_argument("--version", default="1.0.0")
    args = p.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    d = _train_defaults()
    recipe = {"train_seeds": [1000, 1000 + args.train_count], "val_seeds": [2000, 2000 + args.val_count],
              "steps": {s: args.steps or STEPS[s] for s in STEPS},
              "kept": _kept(d), "roi_gate": dict(data.ROI_GATE),
              "normalization": {seq: list(pct) for seq, pct in data.NORMALIZATION.items()},
              "context": {s: {"slices": c, "mm": mm, "same_neighbours": d.same_neighbours}
                          for s, (c, mm) in CONTEXT.items()}}
    check_record(work / "recipe.json", recipe, "recipe")
    seqs = args.seq or ["T2", "FLAIR", "T1C"]
    for seq in seqs + (["T2"] if args.ablation else []):
        _build_tiles(work, seq, args.train_count, args.val_count)
    shipped = {}
    for seq in seqs:
        shipped[seq] = ship(seq, work, args.models, args.steps or STEPS[seq], args.test_count, args.version)
    rows = ablation(work, args.steps or STEPS["T2"], args.test_count) if args.ablation else []
    evals = {f"dmg-{seq.lower()}": json.loads((work / f"dmg-{seq.lower()}" / "eval.json").read_text())
             for seq in seqs}
    args.results.write_text(report.results(args.models, rows, evals=evals))
    print(f"pipeline: wrote {', '.join(shipped)} and {args.results}")


if __name__ == "__main__":
    main()
