import json

import numpy as np
import pytest

from midline_model import fixture, tflite
from tests.conftest import ROOT

# Operators the Edge TPU maps (shared/EDGETPU.md) and the generator is allowed to use.
EDGETPU_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "CONCATENATION", "ADD", "SUB", "MUL", "MEAN",
               "MAX_POOL_2D", "AVERAGE_POOL_2D", "LOGISTIC", "TANH", "RELU", "RELU6",
               "RESIZE_NEAREST_NEIGHBOR", "PAD", "RESHAPE", "QUANTIZE"}


@pytest.mark.parametrize("channels", [1, 3])
def test_model_command_reproduces_the_committed_model(fixture_model, tmp_path, channels):
    committed = fixture_model if channels == 1 else fixture_model.with_name(f"fixture_c{channels}.tflite")
    out = tmp_path / "fixture.tflite"
    fixture.main(["model", "--out", str(out), "--channels", str(channels)])
    assert out.read_bytes() == committed.read_bytes(), (
        "the fixture command no longer makes the committed model; regenerate it and its goldens "
        "(accel/testdata/README.md)")


def test_model_is_full_integer_with_int8_io(fixture_model):
    it = tflite.interpreter(fixture_model)
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    for t in it.get_tensor_details():
        if t["dtype"] == np.float32:
            pytest.fail(f"float tensor {t['name']} in a full-integer model")


def test_model_uses_the_generators_operator_kinds(fixture_model):
    ops = tflite.op_names(fixture_model)
    assert set(ops) <= EDGETPU_OPS, f"ops off the Edge TPU list: {set(ops) - EDGETPU_OPS}"
    for kind in ("CONV_2D", "CONCATENATION", "ADD", "MUL", "AVERAGE_POOL_2D", "LOGISTIC",
                 "RESIZE_NEAREST_NEIGHBOR", "MAX_POOL_2D"):
        assert kind in ops, f"fixture lacks {kind}"


def test_goldens_are_builtin_kernel_outputs(fixture_model):
    gdir = ROOT / "accel" / "testdata" / "fixture_golden"
    manifest = json.loads((gdir / "manifest.json").read_text())
    it = tflite.interpreter(fixture_model)
    shape = manifest["input"]["shape"]
    for case in manifest["cases"]:
        x = np.fromfile(gdir / case["input"], np.int8).reshape(shape)
        want = np.fromfile(gdir / case["output"], np.int8)
        np.testing.assert_array_equal(tflite.run(it, x).ravel(), want, err_msg=case["name"])


def test_outputs_span_enough_of_the_int8_range(fixture_model):
    # A bit-exact check on a near-constant output would prove little.
    gdir = ROOT / "accel" / "testdata" / "fixture_golden"
    y = np.fromfile(gdir / "image0.out.bin", np.int8)
    assert len(np.unique(y)) >= 50


def test_run_refuses_a_mismatched_input(fixture_model):
    it = tflite.interpreter(fixture_model)
    with pytest.raises(ValueError):
        tflite.run(it, np.zeros((1, 32, 32, 1), np.int8))
