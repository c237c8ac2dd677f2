"""A hospital's retraining in one command (site.py), on a BraTS-style folder written from small
phantoms: a smoke run of the whole path, not a model."""

import json

import nibabel as nib
import numpy as np
import pytest

from midline_model import loaders, phantom, site

SEEDS = (4, 5, 6)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Three cases with a T2 and its segmentation only (BraTS 2023 names), in RAS as NIfTI
    files are: loaders.py turns them back into the model's orientation."""
    root = tmp_path_factory.mktemp("site") / "dmg"
    for seed in SEEDS:
        s = phantom.generate(seed, small=True, axial_only=True).series["T2"]
        rs, cs = s.spec.pixel_spacing
        affine = np.diag([cs, rs, s.spec.slice_spacing, 1.0])
        ras = lambda v: np.ascontiguousarray(v.transpose(2, 1, 0)[::-1, ::-1, :])
        d = root / f"DMG-{seed:03d}"
        d.mkdir(parents=True)
        nib.save(nib.Nifti1Image(ras(s.real()).astype(np.float32), affine), str(d / f"{d.name}-t2w.nii.gz"))
        nib.save(nib.Nifti1Image(ras(s.gtv).astype(np.uint8), affine), str(d / f"{d.name}-seg.nii.gz"))
    return root


def test_split_is_by_case_disjoint_and_fixed_by_the_seed(tmp_path):
    folders = [tmp_path / f"c{i:02d}" for i in range(20)]
    a = site.split(folders, 0, 0.2)
    assert (len(a["test"]), len(a["val"]), len(a["train"])) == (4, 2, 14)
    assert sorted(a["test"] + a["val"] + a["train"]) == [f.name for f in folders]
    assert site.split(folders, 0, 0.2) == a and site.split(folders, 1, 0.2) != a
    assert [len(site.split(folders[:3], 0, 0.2)[p]) for p in ("test", "val", "train")] == [1, 1, 1]
    with pytest.raises(SystemExit, match="2 case folders"):
        site.split(folders[:2], 0, 0.2)


def test_one_command_from_cases_to_a_bundle(cases, tmp_path, capsys):
    work, out = tmp_path / "work", tmp_path / "models"
    argv = ["--cases", str(cases), "--work", str(work), "--out", str(out), "--version", "2.0.0",
            "--steps", "2", "--train-arg=--batch=4", "--train-arg=--widths=8,16",
            "--train-arg=--log-every=1", "--train-arg=--val-every=2"]
    site.main(argv)
    printed = capsys.readouterr().out
    parts = json.loads((work / "split.json").read_text())
    # T2 is the only sequence the cases hold: FLAIR and T1C are said to be skipped, not made.
    assert "FLAIR: no case with it" in printed and not (out / "dmg-flair").exists()
    meta = json.loads((out / "dmg-t2" / "model.json").read_text())
    test = meta["metrics"]["test"]
    assert meta["clinical_use"] is False and meta["version"] == "2.0.0"
    assert meta["input"]["channels"] == 3  # the recipe's 2.5D T2
    assert test["subjects"] == len(parts["test"]) == 1 and "baseline_dice" not in test
    assert "contoured cases of the site (dmg)" in meta["metrics"]["data"]
    ev = json.loads((work / "dmg-t2" / "eval.json").read_text())
    assert [r["case"] for r in ev["per_subject"]] == parts["test"]
    assert f"int8 Dice {test['dice_int8']:.3f}" in printed
    card = (out / "dmg-t2" / "MODEL_CARD.md").read_text()
    assert "until the site has validated it" in card and parts["test"][0] in card
    assert "phantom" not in card.split("## Data")[1].split("## Results")[0]
    # Held out means never trained on: the training tiles are the training case's alone.
    with np.load(work / "train-t2-c1-5mm.npz") as z:
        assert set(np.unique(z["T2_seed"])) == {0}
    assert loaders.load_brats_case(cases / parts["train"][0], "T2").gtv.any()
    # Run again: everything is there, nothing is redone; an older version is refused.
    before = (out / "dmg-t2" / "model.tflite").stat().st_mtime_ns
    site.main(argv)
    assert (out / "dmg-t2" / "model.tflite").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="holds version 2.0.0"):
        site.main([*argv[:7], "1.9.0", *argv[8:]])
    # Another split in the same work folder stops instead of mixing runs.
    with pytest.raises(SystemExit, match="another split"):
        site.main([*argv, "--seed", "3"])
