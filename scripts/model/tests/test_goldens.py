"""The preproc goldens committed for Go's parity tests are what the reference makes now."""

from pathlib import Path

from midline_model import goldens

ROOT = Path(__file__).resolve().parents[3]


def test_committed_preproc_goldens_are_current(tmp_path: Path) -> None:
    goldens.make(ROOT / "testdata" / "phantom" / "seed4", tmp_path)
    committed = ROOT / "preproc" / "testdata" / "goldens"
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    for name in names:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name
