"""Holds a .tflite file against the Edge TPU's operator list, since no Edge TPU compiler can be
installed here.

The allowlist comes from shared/EDGETPU.md (Coral's supported-operations table, as reproduced by
Axis, and the google-coral/edgetpu issues it cites). A version cap is set where a newer version is
known to be refused or to change semantics the compiler does not take:
CONV_2D v6 (refused by compiler 16), QUANTIZE v3 (per-channel, refused), RESIZE_NEAREST_NEIGHBOR
v3 (half_pixel_centers, refused by older compilers), TRANSPOSE_CONV (not allowed at all: unmapped
layers in U-Nets). Other caps are the versions TensorFlow 2.14 emits for int8 models, which have
compiled with compiler 16 in the cited reports; a newer version fails here until someone checks
it with a real compile.

    python -m midline_model.opcheck MODEL.tflite
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

# op name -> highest version allowed
EDGETPU_ALLOWLIST = {
    "CONV_2D": 5,
    "DEPTHWISE_CONV_2D": 5,
    "CONCATENATION": 3,
    "ADD": 2,
    "SUB": 2,
    "MUL": 4,
    "MEAN": 2,
    "MAX_POOL_2D": 2,
    "AVERAGE_POOL_2D": 2,
    "LOGISTIC": 2,
    "TANH": 2,
    "RELU": 2,
    "RELU6": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
    "RESIZE_BILINEAR": 2,
    "PAD": 2,
    "RESHAPE": 1,
    "QUANTIZE": 2,
}

_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


@dataclass(frozen=True)
class OpUse:
    name: str
    version: int
    count: int


def operators(path: Path) -> list[OpUse]:
    """Every builtin operator the model uses, with its version and how many nodes use it."""
    m = flatbuffer_utils.read_model(str(path))
    counts = [0] * len(m.operatorCodes)
    for sg in m.subgraphs:
        for op in sg.operators:
            counts[op.opcodeIndex] += 1
    out = []
    for code, n in zip(m.operatorCodes, counts):
        c = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = _NAMES.get(c, f"BUILTIN_{c}")
        if c == schema.BuiltinOperator.CUSTOM:
            name = f"CUSTOM:{code.customCode.decode() if code.customCode else '?'}"
        out.append(OpUse(name=name, version=int(code.version), count=n))
    return out


def violations(path: Path) -> list[str]:
    """What keeps the model off the Edge TPU: unknown ops, too-new versions, several subgraphs,
    tensors that are not int8/int32, or a dynamic shape."""
    problems = []
    m = flatbuffer_utils.read_model(str(path))
    if len(m.subgraphs) != 1:
        problems.append(f"{len(m.subgraphs)} subgraphs, want 1")
    for op in operators(path):
        cap = EDGETPU_ALLOWLIST.get(op.name)
        if cap is None:
            problems.append(f"{op.name} is not on the Edge TPU list")
        elif op.version > cap:
            problems.append(f"{op.name} version {op.version} is above {cap}")
    ok_types = {schema.TensorType.INT8, schema.TensorType.INT32}
    for t in m.subgraphs[0].tensors:
        if t.type not in ok_types:
            problems.append(f"tensor {t.name.decode()} has type {t.type}, not int8/int32")
        if t.shapeSignature is not None and any(d < 0 for d in t.shapeSignature):
            problems.append(f"tensor {t.name.decode()} has a dynamic shape")
        constant = m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) > 0
        if not constant and t.shape is not None and len(t.shape) == 4 and t.shape[0] != 1:
            problems.append(f"tensor {t.name.decode()} has batch {t.shape[0]}, want 1")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m midline_model.opcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path)
    args = p.parse_args(argv)
    for op in operators(args.model):
        print(f"{op.name} v{op.version} x{op.count}")
    bad = violations(args.model)
    for b in bad:
        print("NOT MAPPABLE:", b)
    print("op allowlist " + ("passed" if not bad else "FAILED"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
