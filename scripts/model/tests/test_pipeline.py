"""The training, export and evaluation path on tiny data: a smoke run, not a model."""

import json

import numpy as np
import pytest
import tensorflow as tf

from midline_model import data, evaluate, export, infer, opcheck, phantom, train, trainset
from midline_model import model as M


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiles")
    trainset.build([4], d / "train.npz", small=True)
    return d / "train.npz"


def test_smoke_train_export_evaluate(tiles, tmp_path):
    out = tmp_path / "run"
    train.main(["--seq", "T2", "--train", str(tiles), "--val", str(tiles), "--out", str(out),
                "--steps", "3", "--batch", "4", "--widths", "8,16", "--log-every", "1",
                "--val-every", "3"])
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(np.isfinite(r["seg_loss"]) and np.isfinite(r["d_loss"]) for r in log)
    assert json.loads((out / "train.json").read_text())["kept_step"] == 3
    bundle = tmp_path / "bundle"
    meta = export.export("T2", out, tiles, bundle, "0.0.1", None)
    assert opcheck.violations(bundle / "model.tflite") == []
    assert meta["clinical_use"] is False and meta["checks"]["edgetpu"].startswith("uncompiled")
    assert (bundle / "selftest_in.bin").stat().st_size == 128 * 128
    # The self-test hash is reproducible from the files alone.
    _, sha = export.selftest(bundle / "model.tflite", export.selftest_tile(*train.load_tiles(tiles, "T2")))
    assert sha == meta["targets"]["cpu"]["selftest"]["output_sha256"]
    res = evaluate.evaluate("T2", {"int8": infer.tflite_tiles(bundle / "model.tflite")}, infer.Plan(),
                            {"threshold": 0.5, "min_component_mm3": 50}, [4], tmp_path / "cases",
                            tau=1.0)
    row = res["per_subject"][0]
    assert 0.0 <= row["int8"]["dice"] <= 1.0 and 0.0 <= row["baseline"]["dice"] <= 1.0


def test_training_keeps_the_last_moving_average(tiles, tmp_path):
    out = tmp_path / "run"
    args = ["--seq", "T2", "--train", str(tiles), "--val", str(tiles), "--out", str(out),
            "--batch", "4", "--widths", "8,16", "--log-every", "1", "--val-every", "1", "--resume"]
    train.main(args + ["--steps", "3"])
    (out / "train.json").unlink()
    train.main(args + ["--steps", "6"])  # resumed from step 3's checkpoint
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    info = json.loads((out / "train.json").read_text())
    assert (info["kept_step"], info["kept_val_tile_dice"]) == (6, round(log[-1]["val_tile_dice"], 4))
    g = M.generator(M.GeneratorConfig(widths=(8, 16)))
    g.load_weights(str(out / "generator.weights.h5"))
    vx, vy = train.load_tiles(tiles, "T2")
    kept = g.predict(vx, batch_size=32, verbose=0)
    assert train.tile_dice(vy, kept) == pytest.approx(log[-1]["val_tile_dice"], abs=1e-4)
    # The moving average, not the trained generator: they differ after six steps.
    ckpt_g = M.generator(M.GeneratorConfig(widths=(8, 16)))
    tf.train.Checkpoint(g=ckpt_g).restore(tf.train.latest_checkpoint(str(out / "ckpt"))).expect_partial()
    assert not np.allclose(ckpt_g.predict(vx, batch_size=32, verbose=0), kept)


def test_baseline_finds_a_bright_lesion_on_t2(tmp_path):
    c = evaluate.case(4, tmp_path, small=True)
    m = evaluate.baseline(c["T2_real"], c["T2_region"], "T2", 1.0)
    from midline_model import metrics
    # It finds the lesion, but bright CSF next to the pons leaks in: a baseline, not a solution.
    assert metrics.lesions_found(m, c["T2_gtv"]) == (1, 1)
    assert 0.3 < metrics.dice(m, c["T2_gtv"]) < 0.9


def test_tiler_covers_every_pixel_and_constant_model_gives_the_constant():
    rng = np.random.default_rng(0)
    real = rng.uniform(100, 1000, (3, 150, 203)).astype(np.float32)
    const = lambda t: np.full(t.shape, 0.25, np.float32)
    prob, stats = infer.run_series(real, (5.0, 0.9, 0.9), const, infer.Plan(roi_gate=0.0))
    np.testing.assert_allclose(prob, 0.25, atol=1e-6)
    assert stats.tiles_skipped == 0


def test_gate_zero_equals_no_gating_and_a_gate_skips_tiles():
    rng = np.random.default_rng(1)
    real = rng.uniform(100, 1000, (2, 600, 600)).astype(np.float32)
    real[:, 120:180, 120:180] = 3000  # one bright spot, 1% of the image
    fn = lambda t: (t > 3).astype(np.float32)
    a, sa = infer.run_series(real, (5.0, 1.0, 1.0), fn, infer.Plan(roi_gate=0.0))
    b, _ = infer.run_series(real, (5.0, 1.0, 1.0), fn, infer.Plan(roi_gate=0.0), gating=False)
    np.testing.assert_array_equal(a, b)
    c, sc = infer.run_series(real, (5.0, 1.0, 1.0), fn, infer.Plan(roi_gate=0.05))
    assert sc.tiles_skipped > 0 and sa.tiles_skipped == 0
    # The gate dilates by a stride: the spot is found at the fine scale all the same.
    assert c[:, 130:170, 130:170].min() > 0.5


def test_gate_reaches_slices_within_the_slab():
    # A spot on slice 2 only: the fine tiles around it run on every slice within GATE_SLAB_MM
    # (20 mm: 4 slices at 5 mm) and no further. The model gives 8/256 on dark input, so a pixel
    # near the spot reads 8/256 where its fine tile ran and 0.3 x 8/256 where only the coarse did.
    rng = np.random.default_rng(2)
    real = np.zeros((12, 256, 256), np.float32)
    real[:, 100:200, 100:200] = rng.uniform(100, 200, (12, 100, 100))
    real[2, 30:60, 30:60] = 600
    fn = lambda t: np.where(t > 3, 1.0, 8 / 256).astype(np.float32)
    prob, _ = infer.run_series(real, (5.0, 1.0, 1.0), fn, infer.Plan(size=32, roi_gate=0.05))
    near = prob[:, 80, 80]
    for mm, want in {5.0: 4, 5.0000022: 4, 4.999999995: 4, 0: 0, 1.0: 20, 6.0: 3, 20.5: 0}.items():
        assert infer.gate_reach(mm) == want, mm
    np.testing.assert_allclose(near[[0, 1, 3, 4, 5, 6]], 8 / 256, rtol=1e-5)
    np.testing.assert_allclose(near[7:], 0.3 * 8 / 256, rtol=1e-5)
    np.testing.assert_allclose(prob[:, 240, 240], 0.3 * 8 / 256, rtol=1e-5)


def test_normalization_follows_the_contract():
    v = np.concatenate([np.zeros(1000), np.arange(1, 1001)]).astype(np.float32)
    n = data.fit_normalization(v)
    fg = np.sort(v[v > n.threshold])
    assert n.low == fg[int(np.ceil(0.005 * len(fg))) - 1]
    assert n.high == fg[int(np.ceil(0.995 * len(fg))) - 1]
    z = n.apply(fg)
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 1e-3


def test_tile_origins():
    assert data.tile_origins(100, 128, 0.5) == [0]
    assert data.tile_origins(256, 128, 0.5) == [0, 64, 128]
    assert data.tile_origins(260, 128, 0.5) == [0, 64, 128, 132]


def test_sagittal_to_axial_is_the_patient_frame_permutation():
    # Sagittal: IOP rows (0,1,0), columns (0,0,-1); slices along (-1,0,0). Voxel (k, r, c) sits at
    # LPS (-k, c, -r) (unit spacing, origin 0). After the reformat, axial voxel (i, j, l) must sit
    # at z, y, x increasing with i, j, l.
    K, R, C = 4, 5, 6
    k, r, c = np.meshgrid(np.arange(K), np.arange(R), np.arange(C), indexing="ij")
    lps = np.stack([-k, c, -r], axis=-1).astype(float)
    ax = np.stack([evaluate.sagittal_to_axial(lps[..., d]) for d in range(3)], axis=-1)
    assert ax.shape == (R, C, K, 3)
    assert (np.diff(ax[..., 2], axis=0) > 0).all()  # slices go up
    assert (np.diff(ax[..., 1], axis=1) > 0).all()  # rows go back
    assert (np.diff(ax[..., 0], axis=2) > 0).all()  # columns go to the patient's left


def test_a_work_folder_keeps_one_recipe(tmp_path):
    from midline_model import pipeline
    recipe = {"train_seeds": [1000, 1033], "val_seeds": [2000, 2004], "steps": dict(pipeline.STEPS)}
    pipeline.check_record(tmp_path / "recipe.json", recipe, "recipe")
    pipeline.check_record(tmp_path / "recipe.json", recipe, "recipe")  # the same recipe resumes
    with pytest.raises(SystemExit, match="use another --work"):
        pipeline.check_record(tmp_path / "recipe.json", {**recipe, "steps": {"T2": 3, "FLAIR": 3, "T1C": 3}}, "recipe")


def test_ship_never_overwrites_a_later_version(tmp_path):
    from midline_model import pipeline
    (tmp_path / "model.json").write_text(json.dumps({"version": "1.1.0"}))
    for v in ("1.0.0", "1.1.0", "1.0.9"):
        with pytest.raises(SystemExit, match="holds version 1.1.0"):
            pipeline.check_version(tmp_path, v)
    pipeline.check_version(tmp_path, "1.2.0")
    pipeline.check_version(tmp_path / "absent", "1.0.0")


def test_a_resumed_run_skips_what_it_shipped(tmp_path):
    # A run interrupted after shipping T2 resumes: the bundle it made is recognised by its
    # model bytes and version; another model or another version is not.
    from midline_model import pipeline
    staging, dest = tmp_path / "staging", tmp_path / "dest"
    staging.mkdir()
    dest.mkdir()
    (staging / "model.tflite").write_bytes(b"model a")
    assert not pipeline.already_shipped(dest, staging, "1.4.0")
    (dest / "model.tflite").write_bytes(b"model a")
    (dest / "model.json").write_text(json.dumps({"version": "1.4.0"}))
    (dest / "MODEL_CARD.md").write_text("card")
    assert pipeline.already_shipped(dest, staging, "1.4.0")
    assert not pipeline.already_shipped(dest, staging, "1.5.0")
    (dest / "model.tflite").write_bytes(b"model b")
    assert not pipeline.already_shipped(dest, staging, "1.4.0")


def test_balanced_batches_give_every_study_the_same_share():
    # Three studies with 10, 100 and 1000 tiles; each tile's image holds its study's number.
    study = np.repeat([1, 4, 7], [10, 100, 1000]).astype(np.int32)
    x = np.broadcast_to(study[:, None, None, None], (len(study), 4, 4, 1)).astype(np.float32)
    y = np.zeros_like(x)
    args = train.parser().parse_args(["--seq", "T1C", "--train", ".", "--val", ".", "--out", ".",
                                      "--steps", "300", "--batch", "10"])
    drawn = np.concatenate([bx.numpy()[:, 0, 0, 0] for bx, _ in train.batches(x, y, study, args)])
    assert len(drawn) == 3000
    # The augmentation scales by 0.9-1.1 and shifts by 0.15 at most: the study is still legible.
    which = lambda v: np.digitize(v, [2.5, 5.5])
    share = np.bincount(which(drawn), minlength=3) / len(drawn)
    assert share == pytest.approx([1 / 3] * 3, abs=0.04)
    # Unbalanced, the shuffled tiles follow the studies' sizes.
    plain = np.concatenate([bx.numpy()[:, 0, 0, 0] for bx, _ in train.batches(x, y, None, args).take(300)])
    assert np.mean(which(plain) == 2) > 0.85


def test_tiles_say_their_study_and_enhancement_pattern(tiles, tmp_path):
    assert set(train.tile_groups(tiles, "T1C", "study")) == {4}
    assert set(train.tile_groups(tiles, "T1C", "enhancement")) == {phantom.tumour_of(4).enhancement}
    assert phantom.tumour_of(4) == phantom.generate(4, small=True).tumour
    old = tmp_path / "old.npz"  # a hospital's tiles carry no pattern: balancing by it is refused
    with np.load(tiles) as z:
        np.savez(old, **{k: z[k] for k in z.files if not k.endswith("_enhancement")})
    with pytest.raises(SystemExit, match="enhancement"):
        train.tile_groups(old, "T1C", "enhancement")


def test_evaluation_runs_the_plan_the_bundle_gives_the_firmware():
    # The numbers in model.json must describe what the box does with that model.json.
    for seq, channels, mm in (("T2", 3, 5.0), ("FLAIR", 1, 0.0), ("T1C", 1, 0.0)):
        meta = export.model_json(seq, "1.0.0", None, "checks", "0" * 64, "note", channels, mm)
        assert infer.Plan.from_bundle(meta) == evaluate.plan(seq, (channels - 1) // 2, mm)
    # T1C runs every tile: its 2 mm scale can miss a ring-enhancing lesion (data.ROI_GATE).
    assert evaluate.plan("T1C").roi_gate == 0.0 < evaluate.plan("T2").roi_gate
