import json

from midline_model import export, report


def _summary(d):
    return {"dice": d, "dice_ci95": (d - 0.02, d + 0.02), "dice_min": d - 0.1, "surface_dice_2mm": 0.9,
            "hd95_inplane_mm": 1.5, "volume_error_pct": 4.0, "lesion_sensitivity": 1.0}


def test_card_and_results_carry_the_evaluated_numbers(tmp_path):
    ev = {"subjects": 20, "summary": {"int8": _summary(0.912), "float": _summary(0.915),
                                      "baseline": _summary(0.61)}}
    meta = export.model_json("T2", "1.0.0", ev, "uncompiled; op allowlist passed", "ab" * 32, "phantoms")
    info = {"config": {"widths": [16, 32], "attention": True, "multiscale": True}, "params": 1234,
            "adv_weight": 0.05, "adversarial": True, "train_tiles": 100, "steps": 10, "batch": 4,
            "seed": 1, "seconds": 120.0}
    card = report.model_card(meta, ev, info)
    assert "0.912" in card and "Not for clinical use" in card and "yes" in card
    kept = report.model_card(meta, ev, info | {"kept_step": 10, "kept_val_tile_dice": 0.8, "ema": 0.995})
    assert "moving average of its weights (decay 0.995) at its last step, 10 (validation tile Dice 0.800)" in kept
    assert "each on its own" in card and "centre slice" not in card
    meta25 = meta | {"input": {**meta["input"], "channels": 3, "context_slices": 1, "context_mm": 5.0}}
    card25 = report.model_card(meta25, ev, info | {"same_neighbours": 0.1})
    assert "the slices 5 mm above and below it as 3 channels" in card25
    assert "100 tiles (10% of them drawn with the centre slice as every neighbour)" in card25
    assert "weighs the same" not in card25
    assert "field-of-view" not in card25
    cut = report.model_card(meta, ev, info | {"fov_cut": 0.2})
    assert "100 tiles, 20% of them cut by a field-of-view edge (air beyond a straight edge, no tumour there), 10 steps" in cut
    balanced = report.model_card(meta, ev, info | {"balance": "enhancement"})
    assert "100 tiles, drawn so that each enhancement pattern of the tumour weighs the same in the batches, 10 steps" in balanced
    d = tmp_path / "dmg-t2"
    d.mkdir()
    (d / "model.json").write_text(json.dumps(meta))
    log = [{"step": 250, "adv_loss": 1.0, "d_loss": 1.2, "d_acc": 0.6, "lambda": 0.05}]
    res = report.results(tmp_path, [{"label": "full", "run": "dmg-t2", "train": info,
                                     "eval": _summary(0.9), "log": log}])
    assert "| dmg-t2 1.0.0 | 20 | 0.912" in res and "met" in res and "| 250 |" in res
    # With the evaluation: int8, float and baseline each with their interval and every metric.
    full = report.results(tmp_path, [], evals={"dmg-t2": ev})
    assert "| float | 0.915 (0.895–0.935) | 0.815 | 0.900 | 1.50 mm | 4.0 % | 1.00 |" in full
    assert "| baseline (threshold in atlas region) | 0.610 (0.590–0.630) |" in full
    assert "| float | 0.915 (0.895–0.935) |" in card
    assert meta["metrics"]["test"]["dice_int8"] == 0.912 and meta["clinical_use"] is False
