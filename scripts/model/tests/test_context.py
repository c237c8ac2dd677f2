"""2.5D context (contracts.md): tiles carry their neighbouring slices as channels, in training
tiles, in the reference tiler and in the exported bundle."""

import json

import numpy as np

from midline_model import evaluate, export, infer, opcheck, train, trainset


def test_context_slices_mirror_at_the_series_ends():
    assert infer.context_slices(0, 5, 1).tolist() == [1, 0, 1]
    assert infer.context_slices(2, 5, 2).tolist() == [0, 1, 2, 3, 4]
    assert infer.context_slices(4, 5, 1).tolist() == [3, 4, 3]
    assert infer.context_slices(4, 9, 1, 3).tolist() == [1, 4, 7]
    assert infer.context_slices(1, 9, 2, 3).tolist() == [5, 2, 1, 4, 7]
    assert infer.context_slices(7, 9, 1, 3).tolist() == [4, 7, 6]
    # Shorter than the reach: mirrored, then clamped.
    assert infer.context_slices(0, 2, 1, 3).tolist() == [0, 0, 0]
    assert infer.context_slices(0, 1, 1).tolist() == [0, 0, 0]


def test_context_step_is_the_nearest_whole_number_of_slices():
    # (slice spacing, context_mm) -> slices between channels; the 3 to 6 mm stacks of training
    # and the thin series of the firmware both land within half a slice of context_mm.
    cases = {(5.0, 5.0): 1, (4.999999, 5.0): 1, (5.000002, 5.0): 1, (3.0, 5.0): 2, (4.0, 5.0): 1,
             (6.0, 5.0): 1, (1.5, 5.0): 3, (1.0, 5.0): 5, (0.5, 5.0): 10, (12.0, 5.0): 1,
             (2.0, 5.0): 2, (1.9999999, 5.0): 2, (2.0000001, 5.0): 2, (3.0, 0.0): 1}
    for (slice_mm, context_mm), want in cases.items():
        assert infer.context_step(slice_mm, context_mm) == want, (slice_mm, context_mm)


def test_a_context_channel_is_the_neighbouring_slice():
    # Every slice a permutation of the same values: the normalisation does not change when
    # slices repeat, so a model that answers with its first channel (slice k - 1) must give
    # exactly what the one-channel tiler gives on the series shifted down by one slice (slice 0
    # taking slice 1, the mirror).
    rng = np.random.default_rng(3)
    values = rng.uniform(100, 1000, 90 * 70).astype(np.float32)
    real = np.stack([rng.permutation(values).reshape(90, 70) for _ in range(6)])
    shifted = real[[abs(k - 1) for k in range(6)]]
    first = lambda t: np.tanh(t[..., 0])
    same = lambda t: np.tanh(t)
    got, stats = infer.run_series(real, (5.0, 0.9, 0.9), first, infer.Plan(roi_gate=0.0, context=1))
    want, _ = infer.run_series(shifted, (5.0, 0.9, 0.9), same, infer.Plan(roi_gate=0.0))
    np.testing.assert_array_equal(got, want)
    assert stats.tiles_run > 0
    # At 1.5 mm slices, channels 5 mm apart are three slices apart.
    shifted = real[[abs(k - 3) for k in range(6)]]
    got, _ = infer.run_series(real, (1.5, 0.9, 0.9), first, infer.Plan(roi_gate=0.0, context=1, context_mm=5.0))
    want, _ = infer.run_series(shifted, (1.5, 0.9, 0.9), same, infer.Plan(roi_gate=0.0))
    np.testing.assert_array_equal(got, want)


def test_same_neighbours_puts_the_centre_slice_in_every_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 128, 3)).astype(np.float32)
    y = (rng.uniform(size=(128, 128, 1)) > 0.5).astype(np.float32)
    for _ in range(8):  # flips and intensity changes apply to every channel alike
        a, b = (v.numpy() for v in train.augment(1.0)(x, y))
        np.testing.assert_array_equal(a[..., 0], a[..., 1])
        np.testing.assert_array_equal(a[..., 2], a[..., 1])
        a, b = (v.numpy() for v in train.augment(0.0)(x, y))
        assert not np.array_equal(a[..., 0], a[..., 1])
        # the centre channel and the label stay paired through the flip
        flipped = np.array_equal(b, y[:, ::-1])
        assert flipped or np.array_equal(b, y)
        centre = x[:, ::-1, 1] if flipped else x[..., 1]
        assert abs(np.corrcoef(a[..., 1].ravel(), centre.ravel())[0, 1] - 1) < 1e-5
    one = x[..., 1:2]  # a 2D tile is left as it is
    assert train.augment(1.0)(one, y)[0].shape == (128, 128, 1)


def test_field_of_view_cut_blanks_one_side_in_every_channel():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 128, 3)).astype(np.float32)
    y = np.ones((128, 128, 1), np.float32)
    low = x.min()
    for side, keep, beyond in ((0, 40, np.s_[40:, :]), (1, 40, np.s_[:88, :]), (2, 100, np.s_[:, 100:]),
                               (3, 16, np.s_[:, :112])):
        a, b = (v.numpy() for v in train.cut_field_of_view(x, y, True, side, keep))
        assert (a[beyond] == low).all() and (b[beyond] == 0).all()
        kept = np.ones((128, 128), bool)
        kept[beyond] = False
        assert kept.sum() == 128 * keep
        np.testing.assert_array_equal(a[kept], x[kept])
        assert (b[kept] == 1).all()
        a, b = (v.numpy() for v in train.cut_field_of_view(x, y, False, side, keep))
        np.testing.assert_array_equal(a, x)
        np.testing.assert_array_equal(b, y)
    # In augment: about the asked share of tiles is cut (every tile at 1.0, none at 0.0).
    cut = sum(bool((train.augment(0.0, 1.0)(x, y)[1].numpy() == 0).any()) for _ in range(8))
    assert cut == 8
    assert not any((train.augment(0.0, 0.0)(x, y)[1].numpy() == 0).any() for _ in range(8))


def test_context_tiles_train_export_and_evaluate(tmp_path):
    tiles = tmp_path / "train.npz"
    trainset.build([4], tiles, small=True, context=1, context_mm=5.0)
    x, y = train.load_tiles(tiles, "T2")
    assert x.shape[1:] == (128, 128, 3) and y.shape[1:] == (128, 128, 1)
    # The middle channel is the tile's own slice: the one-channel build cuts the same tiles.
    flat = tmp_path / "flat.npz"
    trainset.build([4], flat, small=True)
    np.testing.assert_array_equal(x[..., 1], train.load_tiles(flat, "T2")[0][..., 0])
    out = tmp_path / "run"
    train.main(["--seq", "T2", "--train", str(tiles), "--val", str(tiles), "--out", str(out),
                "--steps", "2", "--batch", "4", "--widths", "8,16", "--log-every", "1", "--val-every", "2"])
    info = json.loads((out / "train.json").read_text())
    assert info["config"]["channels"] == 3 and info["context_mm"] == 5.0 and info["same_neighbours"] == 0.03
    bundle = tmp_path / "bundle"
    meta = export.export("T2", out, tiles, bundle, "0.0.1", None)
    assert meta["input"] == {"size": 128, "channels": 3, "context_slices": 1, "context_mm": 5.0}
    assert opcheck.violations(bundle / "model.tflite") == []
    assert (bundle / "selftest_in.bin").stat().st_size == 128 * 128 * 3
    plan = infer.Plan.from_bundle(meta)
    assert plan.context == 1 and plan.context_mm == 5.0
    res = evaluate.evaluate("T2", {"int8": infer.tflite_tiles(bundle / "model.tflite")}, plan,
                            {"threshold": 0.5, "min_component_mm3": 50}, [4], tmp_path / "cases", tau=1.0)
    assert 0.0 <= res["per_subject"][0]["int8"]["dice"] <= 1.0
