import numpy as np
import tensorflow as tf

from midline_model import model as M
from midline_model import opcheck, tflite
from tests.conftest import ROOT


def _int8(m: tf.keras.Model) -> bytes:
    return tflite.convert_int8(m, np.random.default_rng(0).normal(0, 1, (4, *m.input_shape[1:])))


def test_generator_maps_fully(tmp_path):
    g = M.generator(M.GeneratorConfig(size=32, widths=(8, 16)), batch_size=1)
    path = tmp_path / "g.tflite"
    path.write_bytes(_int8(g))
    assert opcheck.violations(path) == []
    ops = {o.name for o in opcheck.operators(path)}
    assert "SPACE_TO_BATCH_ND" not in ops and "TRANSPOSE_CONV" not in ops


def test_forbidden_ops_and_float_tails_are_caught(tmp_path):
    L = tf.keras.layers
    x = L.Input((16, 16, 1), batch_size=1)
    y = L.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    y = L.LeakyReLU(0.1)(y)
    y = L.Conv2D(1, 1)(y)
    path = tmp_path / "bad.tflite"
    path.write_bytes(_int8(tf.keras.Model(x, y)))
    bad = " ".join(opcheck.violations(path))
    assert "TRANSPOSE_CONV" in bad and "LEAKY_RELU" in bad
    # A float model (no quantisation) fails on its tensor types.
    c = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(x, L.Conv2D(1, 3, padding="same")(x)))
    fpath = tmp_path / "float.tflite"
    fpath.write_bytes(c.convert())
    assert any("not int8" in v for v in opcheck.violations(fpath))


def test_fixture_passes():
    assert opcheck.violations(ROOT / "accel" / "testdata" / "fixture.tflite") == []
