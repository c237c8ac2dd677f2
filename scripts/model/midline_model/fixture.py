"""The fixture model: a tiny full-integer int8 conv net and its golden outputs.

It uses the kinds of operator the segmentation generator uses (plain and dilated 3x3 convs,
concatenation, max-pooling, channel attention made of a whole-map AVERAGE_POOL_2D, 1x1 convs, LOGISTIC and a broadcast
MUL, nearest-neighbour upsampling, ADD skips, spatial attention), with int8 input and output, so
that the Go binding is checked against TensorFlow's own interpreter on every one of them.

    python -m midline_model.fixture model  --out accel/testdata/fixture.tflite
    python -m midline_model.fixture model  --channels 3 --out accel/testdata/fixture_c3.tflite
    python -m midline_model.fixture golden --model accel/testdata/fixture.tflite --out accel/testdata/fixture_golden

`model` trains nothing: weights are seeded random. `golden` writes fixed inputs made from a seed
and the outputs of TFLite's builtin kernels for them; `make test` runs it again and diffs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from midline_model import tflite

SIZE = 64
SEED = 20261126


def resize_nearest_2x(x: tf.Tensor) -> tf.Tensor:
    """2x nearest-neighbour upsampling with the default flags the Edge TPU compiler accepts.

    Keras' UpSampling2D sets half_pixel_centers, which makes RESIZE_NEAREST_NEIGHBOR version 3.
    """
    h, w = x.shape[1], x.shape[2]
    return tf.compat.v1.image.resize_nearest_neighbor(x, (2 * h, 2 * w), align_corners=False,
                                                      half_pixel_centers=False)


def build(seed: int = SEED, channels: int = 1) -> tf.keras.Model:
    """The fixture network, with seeded random weights; channels > 1 makes a 2.5D fixture."""
    # Layer names, and so the converted model's bytes, count the layers this process made before.
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers
    x = L.Input((SIZE, SIZE, channels), batch_size=1, name="image")
    a = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(x)
    c = L.Concatenate()([a, b])
    d = L.MaxPool2D(2)(c)
    d = L.Conv2D(16, 3, padding="same", activation="relu")(d)
    g = L.AveragePooling2D(pool_size=d.shape[1:3])(d)  # the squeeze, as the generator does it
    g = L.Conv2D(4, 1, activation="relu")(g)
    g = L.Conv2D(16, 1, activation="sigmoid")(g)
    d = L.Multiply()([d, g])
    u = L.Lambda(resize_nearest_2x)(d)
    u = L.Conv2D(16, 3, padding="same", activation="relu")(u)
    s = L.Conv2D(16, 1, activation="relu")(c)
    y = L.Add()([u, s])
    y = L.Multiply()([y, L.Conv2D(1, 1, activation="sigmoid")(y)])
    # A wide head, so that the output spans most of the int8 range rather than hugging 0.5.
    wide = tf.keras.initializers.RandomNormal(stddev=6.0, seed=seed)
    out = L.Conv2D(1, 1, activation="sigmoid", kernel_initializer=wide, name="probability")(y)
    return tf.keras.Model(x, out, name="fixture")


def images(seed: int, n: int, channels: int = 1) -> np.ndarray:
    """n float images in [0, 1) with structure (blobs on a ramp) and noise, in each channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    out = np.empty((n, SIZE, SIZE, channels), np.float32)
    for i in range(n):
        for c in range(channels):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.3)
            blob = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)
            img = 0.3 * xx + 0.5 * blob + rng.normal(0, 0.05, (SIZE, SIZE))
            out[i, :, :, c] = np.clip(img, 0, 1)
    return out


def convert(model: tf.keras.Model, seed: int = SEED) -> bytes:
    """Full-integer post-training quantization with int8 input and output."""
    return tflite.convert_int8(model, images(seed + 1, 64, model.input_shape[-1]))


def golden_inputs(model: bytes, seed: int = SEED) -> dict[str, np.ndarray]:
    """Fixed int8 inputs: the zero point everywhere, a full-range ramp, noise, and images."""
    it = tflite.interpreter(model)
    (inp,) = it.get_input_details()
    scale, zp = tflite.quantization(inp)
    shape = tuple(inp["shape"])
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed + 2)
    cases = {
        "zero": np.full(shape, zp, np.int8),
        "ramp": (np.arange(n) % 256 - 128).astype(np.int8).reshape(shape),
        "noise": rng.integers(-128, 128, size=shape, dtype=np.int8),
    }
    for i, img in enumerate(images(seed + 3, 2)):
        q = np.clip(np.round(img / scale) + zp, -128, 127).astype(np.int8)
        cases[f"image{i}"] = q.reshape(shape)
    return cases


def write_golden(model_path: Path, out: Path, seed: int = SEED) -> None:
    """Inputs, outputs of the builtin kernels, and a manifest describing them."""
    model = model_path.read_bytes()
    it = tflite.interpreter(model)
    (inp,), (outp,) = it.get_input_details(), it.get_output_details()
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, x in golden_inputs(model, seed).items():
        y = tflite.run(it, x)
        (out / f"{name}.in.bin").write_bytes(x.tobytes())
        (out / f"{name}.out.bin").write_bytes(y.tobytes())
        cases.append({"name": name, "input": f"{name}.in.bin", "output": f"{name}.out.bin",
                      "output_sha256": hashlib.sha256(y.tobytes()).hexdigest()})
    manifest = {
        "model": model_path.name,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "tensorflow": tf.__version__,
        "op_resolver": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
        "input": tensor_manifest(inp),
        "output": tensor_manifest(outp),
        "cases": cases,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def tensor_manifest(detail: dict) -> dict:
    scale, zp = tflite.quantization(detail)
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": scale, "zero_point": zp}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.fixture", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model", help="build and convert the fixture model")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--channels", type=int, default=1, help="input channels (3: a 2.5D fixture)")
    g = sub.add_parser("golden", help="write golden inputs and outputs for a fixture model")
    g.add_argument("--model", type=Path, required=True)
    g.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "model":
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(convert(build(channels=args.channels)))
    else:
        write_golden(args.model, args.out)


if __name__ == "__main__":
    main()
