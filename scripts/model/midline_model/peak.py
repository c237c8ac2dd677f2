"""The int8 arithmetic of a model, and a large int8 convolution to find this CPU's practical
int8 peak on the firmware's TFLite library (`make bench`).

    python -m midline_model.peak macs MODEL        # multiply-accumulates of one invocation
    python -m midline_model.peak conv OUT.tflite   # writes the microbenchmark model, prints its MACs

MACs count CONV_2D and DEPTHWISE_CONV_2D (output elements x kernel height x width x input
channels per group); the models' other ops (add, mul, pooling, resize, logistic) are a few per
cent of that and are left out, so the share of peak a model reaches is slightly understated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def macs(path: str | Path) -> int:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(path))
    conv, depthwise = schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D
    total = 0
    for g in m.subgraphs:
        for op in g.operators:
            c = m.operatorCodes[op.opcodeIndex]
            code = max(c.builtinCode, c.deprecatedBuiltinCode)
            if code not in (conv, depthwise):
                continue
            out = np.prod(g.tensors[op.outputs[0]].shape)
            w = g.tensors[op.inputs[1]].shape  # conv: [out, kh, kw, in]; depthwise: [1, kh, kw, out]
            per = w[1] * w[2] * (w[3] if code == conv else 1)
            total += int(out) * int(per)
    return total


def conv_model(out: Path, size: int = 64, channels: int = 128, layers: int = 4) -> int:
    """A stack of 3x3 int8 convolutions, channels in and out, on a size x size input: large
    enough that TFLite's int8 GEMM dominates and the graph's overhead vanishes."""
    import tensorflow as tf

    inp = tf.keras.Input((size, size, channels), batch_size=1)
    x = inp
    for _ in range(layers):
        x = tf.keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(0)

    def data():
        for _ in range(8):
            yield [rng.standard_normal((1, size, size, channels)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = data
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    out.write_bytes(conv.convert())
    return macs(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.peak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("macs").add_argument("model", type=Path)
    sub.add_parser("conv").add_argument("out", type=Path)
    args = p.parse_args(argv)
    print(macs(args.model) if args.cmd == "macs" else conv_model(args.out))


if __name__ == "__main__":
    main()
