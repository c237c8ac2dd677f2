import json
import os
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from midline_model import anatomy, dicomio, phantom
from tests.conftest import ROOT

COMMITTED = ROOT / "testdata" / "phantom" / "seed4"


def test_anatomy_regions_sit_where_the_atlases_put_them():
    a = anatomy.load()
    pons = a.centroid(a.pons)
    # Pons: midline, behind and below the thalami (LPS: +x left, +y posterior, +z superior).
    assert abs(pons[0]) < 4 and 15 < pons[1] < 40 and -45 < pons[2] < -20
    left, right = a.centroid(a.thalamus_l), a.centroid(a.thalamus_r)
    assert left[0] > 5 and right[0] < -5, "thalamus sides swapped: LPS +x is the patient's left"
    assert left[2] > pons[2] + 25
    brain = a.csf + a.gm + a.wm
    assert 1000e3 < brain.sum() < 2000e3  # mm3 of an adult brain


LESION_FREE = ROOT / "testdata" / "phantom" / "seed5-lesion-free"


@pytest.mark.parametrize("folder,args", [(COMMITTED, ["--seed", "4", "--small"]),
                                         (LESION_FREE, ["--seed", "5", "--small", "--lesion-free"])])
def test_committed_study_is_what_the_command_makes(tmp_path, folder, args):
    phantom.main([*args, "--out", str(tmp_path)])
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # reference.json and *.prob.f32.gz: the pipeline's (seed4_reference), not the generator's
    committed = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()
                       and p.name not in ("README.md", "reference.json")
                       and not p.name.endswith(".prob.f32.gz"))
    assert made == committed
    for rel in made:
        if rel.suffix == ".gz":  # gzip headers carry a time; compare the data
            a, b = (np.asarray(nib.load(str(d / rel)).dataobj) for d in (tmp_path, folder))
            np.testing.assert_array_equal(a, b, err_msg=str(rel))
        else:
            assert (tmp_path / rel).read_bytes() == (folder / rel).read_bytes(), str(rel)


def test_a_lesion_free_study_is_its_seeds_brain_without_the_tumour():
    """The same draws (acquisition, identity) as the seed's study, with no tumour: no GTV, and
    where the tumour was, T2 and FLAIR no brighter than the rest of the brain."""
    keep = lambda positions, normal, t: np.arange(len(positions)) % 7 == 3  # two slices: fast
    with_t = phantom.generate(5, small=True, keep=keep)
    free = phantom.generate(5, small=True, keep=keep, lesion_free=True)
    assert free.lesion_free and phantom.study_json(free, _uids(free))["tumour"] is None
    assert free.patient == with_t.patient and free.tumour == with_t.tumour
    for seq in phantom.SEQUENCES:
        a, b = with_t.series[seq], free.series[seq]
        assert a.gtv.sum() > 100 and not b.gtv.any()
        assert a.spec == b.spec and np.array_equal(a.positions, b.positions)
        if seq in ("T2", "FLAIR"):  # the lesion is bright there
            def contrast(x):
                v = x.pixels.astype(float)
                return v[a.gtv > 0].mean() / v[v > np.percentile(v, 50)].mean()
            assert contrast(a) > 1.15 * contrast(b), seq


def _uids(study):
    return {"study": "1.2", "frame_of_reference": "1.3",
            **{seq: {"series": "1.4", "instances": []} for seq in study.series}}


@pytest.fixture(scope="module")
def study():
    return json.loads((COMMITTED / "study.json").read_text())


@pytest.mark.parametrize("seq", phantom.SEQUENCES)
def test_gtv_lies_on_the_tumour_in_patient_coordinates(study, seq):
    img = nib.load(str(COMMITTED / f"{seq}.gtv.nii.gz"))
    mask = np.asarray(img.dataobj)
    ijk = np.argwhere(mask > 0).mean(axis=0)
    ras = img.affine[:3, :3] @ ijk + img.affine[:3, 3]
    lps = ras * np.array([-1, -1, 1])
    # The head tilts about the tumour's centre, so the centre stays put in scanner coordinates;
    # an irregular shape moves the mask's centroid a little.
    assert np.linalg.norm(lps - np.array(study["tumour"]["centre_lps"])) < 3.0


@pytest.mark.parametrize("seq", phantom.SEQUENCES)
def test_mask_grid_matches_the_dicom_geometry(study, seq):
    img = nib.load(str(COMMITTED / f"{seq}.gtv.nii.gz"))
    vol, dss = dicomio.read_series(COMMITTED / seq)
    assert img.shape == (vol.shape[2], vol.shape[1], vol.shape[0])
    uids = study["series"][seq]["sop_instance_uids"]
    for k in (0, len(dss) - 1):
        assert dss[k].SOPInstanceUID == uids[k]
        ras = img.affine @ np.array([0, 0, k, 1.0])
        np.testing.assert_allclose(ras[:3] * [-1, -1, 1], np.array(dss[k].ImagePositionPatient, float),
                                   atol=1e-3)
        # Column index runs along the row direction (IOP's first triplet), by PixelSpacing[1].
        ras1 = img.affine @ np.array([1, 0, k, 1.0])
        step = (ras1 - ras)[:3] * [-1, -1, 1]
        np.testing.assert_allclose(step, np.array(dss[k].ImageOrientationPatient[:3], float)
                                   * float(dss[k].PixelSpacing[1]), atol=1e-4)


def test_gtv_volume_matches_the_drawn_tumour(study):
    drawn = study["tumour"]["volume_cm3"]
    for seq, s in study["series"].items():
        # Thick slices average the boundary; the volume stays close.
        assert abs(s["gtv_cm3"] - drawn) / drawn < 0.2, (seq, s["gtv_cm3"], drawn)


def test_lesion_contrast_per_sequence():
    means = {}
    for seq in phantom.SEQUENCES:
        vol, _ = dicomio.read_series(COMMITTED / seq)
        gtv = np.asarray(nib.load(str(COMMITTED / f"{seq}.gtv.nii.gz")).dataobj).transpose(2, 1, 0) > 0
        ring = np.zeros_like(gtv)
        from scipy import ndimage
        ring = ndimage.binary_dilation(gtv, iterations=6) & ~ndimage.binary_dilation(gtv, iterations=3)
        means[seq] = (vol[gtv].mean(), vol[ring].mean())
    assert means["T2"][0] > 1.2 * means["T2"][1], "bright on T2"
    assert means["FLAIR"][0] > 1.3 * means["FLAIR"][1], "bright on FLAIR"
    # On T1C the same GTV is harder to see: its contrast is the weakest of the three.
    contrast = {s: abs(m[0] / m[1] - 1) for s, m in means.items()}
    assert contrast["T1C"] < min(contrast["T2"], contrast["FLAIR"])


def test_dicom_headers_are_valid_and_vendor_styled(study):
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dciodvfy (dicom3tools) is required in CI; make setup installs it")
        pytest.skip("dciodvfy missing; run make setup")
    for seq in phantom.SEQUENCES:
        f = COMMITTED / seq / "IM0001.dcm"
        out = subprocess.run([dciodvfy, str(f)], capture_output=True, text=True)
        errors = [l for l in (out.stdout + out.stderr).splitlines() if l.startswith("Error")]
        assert not errors, (seq, errors)
    _, dss = dicomio.read_series(COMMITTED / "FLAIR")
    assert float(dss[0].InversionTime) > 1500
    _, t1c = dicomio.read_series(COMMITTED / "T1C")
    assert t1c[0].ContrastBolusAgent
    assert len({d.FrameOfReferenceUID for s in phantom.SEQUENCES
                for d in dicomio.read_series(COMMITTED / s)[1][:1]}) == 1


@pytest.mark.parametrize("position,plane", [("FFS", "axial"), ("HFP", "axial"), ("HFS", "coronal")])
def test_positions_and_planes_keep_the_lesion_in_place(tmp_path, position, plane):
    """Whatever the table position or plane, the GTV's centroid in patient coordinates, through
    the DICOM geometry, is the tumour's centre, and the lesion is bright on T2 there."""
    phantom.main(["--seed", "4", "--small", "--position", position, "--plane", plane,
                  "--out", str(tmp_path)])
    study = json.loads((tmp_path / "study.json").read_text())
    vol, dss = dicomio.read_series(tmp_path / "T2")
    assert dss[0].PatientPosition == position
    img = nib.load(str(tmp_path / "T2.gtv.nii.gz"))
    mask = np.asarray(img.dataobj)
    ijk = np.argwhere(mask > 0).mean(axis=0)
    lps = (img.affine[:3, :3] @ ijk + img.affine[:3, 3]) * np.array([-1, -1, 1])
    assert np.linalg.norm(lps - np.array(study["tumour"]["centre_lps"])) < 3.0
    gtv = mask.transpose(2, 1, 0) > 0
    assert vol[gtv].mean() > 1.2 * vol[~gtv & (vol > np.percentile(vol, 50))].mean()
    # Other images than seed 4's own (the committed study): other UIDs.
    seed4 = json.loads((COMMITTED / "study.json").read_text())
    assert study["uids"]["study"] != seed4["uids"]["study"]
    assert not {d.SOPInstanceUID for d in dss} & set(seed4["series"]["T2"]["sop_instance_uids"])


def test_site_override_keeps_the_seeds_tumour():
    """--site moves the tumour and keeps every other drawn parameter of the seed."""
    from midline_model import anatomy
    a = anatomy.load()
    drawn = phantom.draw_tumour(np.random.default_rng([21, 0x4D494C]), a)
    left = phantom.draw_tumour(np.random.default_rng([21, 0x4D494C]), a, "thalamus_l")
    right = phantom.draw_tumour(np.random.default_rng([21, 0x4D494C]), a, "thalamus_r")
    assert left.site == "thalamus_l" and right.site == "thalamus_r"
    assert left.centre_lps[0] > 5 and right.centre_lps[0] < -5
    assert left.volume_cm3 == right.volume_cm3 == drawn.volume_cm3


@pytest.mark.parametrize("spec", [{"mode": "3d"}, {"rows": "128"}, {"pixel_spacing": [1.0]},
                                  {"slices": True}, {"position": "HFS"}])
def test_spec_refuses_what_it_cannot_set(spec):
    with pytest.raises(ValueError):
        phantom.check_spec(spec)
    phantom.check_spec({"rows": 96, "pixel_spacing": [0.9, 1.4], "slice_spacing": 2})
