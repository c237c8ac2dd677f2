"""Times a .tflite model in TensorFlow's Python interpreter, the peer the Go engine is measured
against in `make bench`.

    python -m midline_model.bench MODEL [--seconds 3] [--threads 1]

Prints one line per configuration in Go's benchmark format, so the two sides read alike:
builtin kernels (what the firmware's library runs) and the wheel's default XNNPACK delegate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from midline_model import tflite


def time_invoke(it: tf.lite.Interpreter, seconds: float) -> tuple[int, float]:
    """Invocations done in about `seconds`, and nanoseconds per invocation."""
    (inp,) = it.get_input_details()
    rng = np.random.default_rng(0)
    it.set_tensor(inp["index"], rng.integers(-128, 128, size=inp["shape"], dtype=np.int8))
    it.invoke()  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        it.invoke()
        n += 1
    return n, (time.perf_counter() - start) / n * 1e9


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.bench", description=__doc__)
    p.add_argument("model")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    builtin = tflite.interpreter(args.model, num_threads=args.threads)
    n, ns = time_invoke(builtin, args.seconds)
    print(f"PythonTFLite/builtin-{args.threads}\t{n}\t{ns:.0f} ns/op")
    xnn = tf.lite.Interpreter(model_path=args.model, num_threads=args.threads)
    xnn.allocate_tensors()
    n, ns = time_invoke(xnn, args.seconds)
    print(f"PythonTFLite/xnnpack-{args.threads}\t{n}\t{ns:.0f} ns/op")


if __name__ == "__main__":
    main()
