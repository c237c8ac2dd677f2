from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fixture_model() -> Path:
    """The committed fixture model the Go binding is checked against."""
    return ROOT / "accel" / "testdata" / "fixture.tflite"
