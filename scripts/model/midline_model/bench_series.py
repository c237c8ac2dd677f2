"""The Python reference pipeline on one series, timed, for `make bench` to set beside the Go
pipeline in the same run.

    python -m midline_model.bench_series SERIES_DIR BUNDLE_DIR [--threads 2]

Reads the series (slices sorted along the normal), runs `infer.run_series` (normalisation,
resampling, tiling, TFLite's builtin int8 kernels, blending, fusion) with gating, and prints
one JSON line: wall seconds of run_series (reading the files excluded), seconds inside the
interpreter's invocations, tiles run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from midline_model import dicomio, infer, tflite


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.bench_series", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("series", type=Path)
    p.add_argument("bundle", type=Path)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    meta = json.loads((args.bundle / "model.json").read_text())
    real, dss = dicomio.read_series(args.series)
    spacing = dicomio.spacing(dss)
    invoke = 0.0
    run = tflite.run

    def timed(interp, x):
        nonlocal invoke
        t = time.perf_counter()
        y = run(interp, x)
        invoke += time.perf_counter() - t
        return y

    tflite.run = timed  # tflite_tiles looks it up at call time
    fn = infer.tflite_tiles(args.bundle / "model.tflite", threads=args.threads)
    t0 = time.perf_counter()
    _, stats = infer.run_series(real, spacing, fn, infer.Plan.from_bundle(meta))
    wall = time.perf_counter() - t0
    print(json.dumps({"series": str(args.series), "shape": list(real.shape), "threads": args.threads,
                      "seconds": round(wall, 3), "invoke_seconds": round(invoke, 3),
                      "tiles_run": stats.tiles_run}))


if __name__ == "__main__":
    main()
