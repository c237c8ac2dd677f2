"""The shipped bundles (models/dmg-*), as CI sees them: the Edge TPU op allowlist, the size
limit, the uncompiled mark, and a self-test that exercises the lesion path."""

import hashlib
import json

import numpy as np
import pytest

from midline_model import opcheck, tflite
from tests.conftest import ROOT

BUNDLES = sorted((ROOT / "models").glob("dmg-*"))


def test_three_bundles_are_shipped():
    assert [b.name for b in BUNDLES] == ["dmg-flair", "dmg-t1c", "dmg-t2"]


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda b: b.name)
def test_shipped_bundle(bundle):
    meta = json.loads((bundle / "model.json").read_text())
    model = bundle / meta["targets"]["cpu"]["file"]
    assert opcheck.violations(model) == []
    assert "edgetpu" not in meta["targets"] and meta["checks"]["edgetpu"].startswith("uncompiled")
    assert meta["clinical_use"] is False
    assert sum(f.stat().st_size for f in bundle.iterdir()) <= 4 << 20
    # The self-test's output is what model.json says, and it is not a blank answer: some pixels
    # above the threshold and most below, so a model that finds nothing (or everything) fails it.
    st = meta["targets"]["cpu"]["selftest"]
    it = tflite.interpreter(model)
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    x = np.frombuffer((bundle / st["input"]).read_bytes(), np.int8).reshape(inp["shape"])
    y = tflite.run(it, x)
    assert hashlib.sha256(y.tobytes()).hexdigest() == st["output_sha256"]
    s, z = tflite.quantization(out)
    above = ((y.astype(np.float32) - z) * s >= meta["threshold"]).mean()
    assert 0.01 < above < 0.5, f"{above:.3f} of the self-test output above the threshold"
