"""Running and inspecting .tflite files the way the firmware does.

The firmware's TFLite C library has no XNNPACK delegate, and TensorFlow's pip wheel applies it by
default; the two can differ by one step in int8. Everything here runs TFLite's builtin kernels
only, so Python and Go results are comparable byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf


def interpreter(model: Path | str | bytes, num_threads: int | None = None) -> tf.lite.Interpreter:
    """An interpreter with builtin kernels and no default delegates, tensors allocated."""
    kind = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if isinstance(model, bytes):
        it = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=kind,
                                 num_threads=num_threads)
    else:
        it = tf.lite.Interpreter(model_path=str(model), experimental_op_resolver_type=kind,
                                 num_threads=num_threads)
    it.allocate_tensors()
    return it


def run(it: tf.lite.Interpreter, x: np.ndarray) -> np.ndarray:
    """One invocation of a single-input, single-output model."""
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    if x.dtype != inp["dtype"] or tuple(x.shape) != tuple(inp["shape"]):
        raise ValueError(f"input {x.dtype}{x.shape} does not match {inp['dtype']}{tuple(inp['shape'])}")
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(out["index"]).copy()


def op_names(model: Path | str | bytes) -> list[str]:
    """The builtin operator of every node, in execution order."""
    return [op["op_name"] for op in interpreter(model)._get_ops_details()]


def quantization(detail: dict) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor quantized tensor."""
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


def convert_int8(model: tf.keras.Model, calibration) -> bytes:
    """Full-integer post-training quantisation with int8 input and output, calibrated on the
    given float samples (each shaped like one model input without the batch axis)."""

    def representative():
        for x in calibration:
            yield [np.asarray(x, np.float32)[None]]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = representative
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()
