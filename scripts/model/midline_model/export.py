"""Export a trained generator as the firmware's model bundle (DESIGN.md, "Model bundle").

    python -m midline_model.export --seq T2 --train-dir build/dmg-t2 --tiles build/train.npz \
        --eval build/dmg-t2/eval.json --out ../../models/dmg-t2 --version 1.0.0

Full-integer int8 TFLite (int8 input and output, batch 1, static 128x128) calibrated on training
tiles; the op allowlist check of opcheck.py; a self-test input and the sha256 of its output under
TFLite's builtin kernels; model.json with the evaluation's numbers; MODEL_CARD.md. No Edge TPU
target is written: `checks.edgetpu` says it is uncompiled and whether the allowlist passed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from midline_model import model as M
from midline_model import infer, opcheck, tflite, train

ROI = {"T2": ("GTV_T2_AI", [255, 64, 64]), "FLAIR": ("GTV_FLAIR_AI", [255, 160, 32]),
       "T1C": ("GTV_T1C_AI", [64, 160, 255])}


def load_generator(train_dir: Path, batch_size: int | None = None) -> tuple[tf.keras.Model, dict]:
    info = json.loads((train_dir / "train.json").read_text())
    cfg = info["config"]
    g = M.generator(M.GeneratorConfig(**{**cfg, "widths": tuple(cfg["widths"])}), batch_size=batch_size)
    g.load_weights(str(train_dir / "generator.weights.h5"))
    return g, info


def calibration_tiles(x: np.ndarray, y: np.ndarray, n: int = 256, seed: int = 0) -> np.ndarray:
    """The int8 calibration set: n training tiles, half with tumour, drawn by seed."""
    rng = np.random.default_rng(seed)
    pos = np.nonzero(y.reshape(len(y), -1).any(axis=1))[0]
    neg = np.setdiff1d(np.arange(len(x)), pos)
    pick = np.concatenate([rng.choice(pos, min(n // 2, len(pos)), replace=False),
                           rng.choice(neg, min(n // 2, len(neg)), replace=False)])
    return x[np.sort(pick)]


def selftest_tile(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The self-test's input: the training tile whose tumour covers the share nearest one half,
    so that the output it hashes holds lesion and background both. A background tile's output
    is all zeros, which a model that finds nothing gives as well (1.4.0's first self-tests)."""
    share = y.reshape(len(y), -1).mean(axis=1)
    return x[int(np.argmin(np.abs(share - 0.5)))]


def selftest(model_path: Path, tile: np.ndarray) -> tuple[bytes, str]:
    """The self-test input (int8 bytes) and the sha256 of the output for it."""
    it = tflite.interpreter(model_path)
    (inp,) = it.get_input_details()
    s, z = tflite.quantization(inp)
    q = np.clip(np.round(tile / s) + z, -128, 127).astype(np.int8)[None]  # tile: (H, W, C)
    out = tflite.run(it, q)
    return q.tobytes(), hashlib.sha256(out.tobytes()).hexdigest()


def model_json(seq: str, version: str, evaluation: dict | None, checks: str, selftest_sha: str,
               data_note: str, channels: int = 1, context_mm: float = 0.0) -> dict:
    name, color = ROI[seq]
    summ = (evaluation or {}).get("summary", {})
    test = {}
    if summ:
        i8, fl, base = summ.get("int8", {}), summ.get("float", {}), summ.get("baseline", {})
        test = {"subjects": evaluation["subjects"], "dice_int8": round(i8.get("dice", 0), 4),
                "dice_int8_ci95": [round(v, 4) for v in i8.get("dice_ci95", [0, 0])],
                "dice_float": round(fl.get("dice", 0), 4),
                "surface_dice_2mm": round(i8.get("surface_dice_2mm", 0), 4),
                "hd95_inplane_mm": round(i8.get("hd95_inplane_mm", 0), 3),
                "volume_error_pct": round(i8.get("volume_error_pct", 0), 2),
                "lesion_sensitivity": round(i8.get("lesion_sensitivity", 0), 4),
                **({"baseline_dice": round(base["dice"], 4)} if base else {})}
    return {
        "name": f"dmg-{seq.lower()}", "version": version, "sequence": seq, "clinical_use": False,
        "roi": {"name": name, "type": "GTV", "color": color},
        "targets": {"cpu": {"file": "model.tflite",
                            "selftest": {"input": "selftest_in.bin", "output_sha256": selftest_sha}}},
        "checks": {"edgetpu": checks},
        **infer.bundle_plan(seq, channels, context_mm),
        "metrics": {"test": test, "data": data_note},
        "runtime": {"min_firmware": "0.1.0"},
    }


def export(seq: str, train_dir: Path, tiles: Path, out: Path, version: str,
           evaluation: Path | None, data_note: str | None = None) -> dict:
    """The bundle in out; data_note says what it was trained and tested on (default: the
    phantom recipe's seeds)."""
    g, info = load_generator(train_dir, batch_size=1)
    x, y = train.load_tiles(tiles, seq)
    calib = calibration_tiles(x, y)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(tflite.convert_int8(g, calib))
    bad = opcheck.violations(out / "model.tflite")
    if bad:
        raise SystemExit("export: the model would not map onto the Edge TPU:\n  " + "\n  ".join(bad))
    checks = "uncompiled; op allowlist passed"
    st_in, st_sha = selftest(out / "model.tflite", selftest_tile(x, y))
    (out / "selftest_in.bin").write_bytes(st_in)
    ev = json.loads(evaluation.read_text()) if evaluation else None
    note = data_note or (f"phantom studies from midline_model.phantom: trained on {info['train_tiles']} tiles of "
                         f"training seeds 1000+, tested on held-out seeds 3000+; no patient data")
    meta = model_json(seq, version, ev, checks, st_sha, note, info["config"]["channels"],
                      info.get("context_mm", 0.0))
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", required=True)
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--tiles", type=Path, required=True)
    p.add_argument("--eval", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", default="1.0.0")
    args = p.parse_args(argv)
    meta = export(args.seq, args.train_dir, args.tiles, args.out, args.version, args.eval)
    print(json.dumps(meta["metrics"], indent=2))


if __name__ == "__main__":
    main()
