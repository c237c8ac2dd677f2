"""MODEL_CARD.md for a bundle and RESULTS.md for the toolchain, written from the numbers the
evaluation printed (never typed by hand)."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = {"T2": 0.90, "FLAIR": 0.88, "T1C": 0.80}
PAPER_TEST = {"T2": 0.872, "FLAIR": 0.862, "T1C": 0.750}


def _f(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _studies(info: dict) -> str:
    seeds = info.get("train_studies")
    if not seeds:
        return ""
    return f"{len(seeds)} studies (seeds {_ranges(seeds)}; validation {_ranges(info.get('val_studies', []))}), "


def _ranges(seeds: list[int]) -> str:
    out, start = [], None
    for i, s in enumerate(seeds):
        if start is None:
            start = s
        if i + 1 == len(seeds) or seeds[i + 1] != s + 1:
            out.append(f"{start}" if start == s else f"{start}-{s}")
            start = None
    return ", ".join(out)


def _kept(train_info: dict) -> str:
    if "kept_step" not in train_info:
        return ""
    what = (f"the moving average of its weights (decay {train_info['ema']})" if train_info.get("ema")
            else "the generator")
    dice = train_info.get("kept_val_tile_dice")
    return f"; kept: {what} at its last step, {train_info['kept_step']}" + (
        f" (validation tile Dice {dice:.3f})" if dice is not None else "")


def _row(label: str, m: dict, ci: bool = False) -> str:
    dice = f"{_f(m['dice'])} ({_f(m['dice_ci95'][0])}–{_f(m['dice_ci95'][1])})" if ci else _f(m["dice"])
    return (f"| {label} | {dice} | {_f(m['dice_min'])} | {_f(m['surface_dice_2mm'])} | "
            f"{_f(m['hd95_inplane_mm'], 2)} mm | {_f(m['volume_error_pct'], 1)} % | {_f(m['lesion_sensitivity'], 2)} |")


def _rows(i8: dict, fl: dict, base: dict | None) -> list[str]:
    rows = [_row("int8 (shipped)", i8, ci=True), _row("float", fl, ci=True)]
    if base:
        rows.append(_row("baseline (threshold in atlas region)", base, ci=True))
    return rows


_HEADER = ["| | Dice (95% CI) | min Dice | surface Dice 2 mm | HD95 in-plane (median over studies) | "
           "mean abs. volume error | lesions found |", "|---|---|---|---|---|---|---|"]


def model_card(meta: dict, ev: dict, train_info: dict, release_note: str = "",
               site: dict | None = None) -> str:
    """MODEL_CARD.md of a bundle; release_note, when given, says how this version differs.
    site (site.py: the cases folder's name and the split's case names) makes the card of a
    model trained on a hospital's cases instead of phantoms."""
    seq = meta["sequence"]
    s = ev["summary"]
    i8, fl, base = s["int8"], s["float"], s.get("baseline")
    cfg = train_info["config"]
    inp = meta["input"]
    seen = (f"each seen with the slices {inp.get('context_mm', 0):g} mm above and below it as "
            f"{inp['channels']} channels, 2.5D, mirrored at a series' ends" if inp["channels"] > 1
            else "each on its own")
    alike = (f" ({train_info['same_neighbours']:.0%} of them drawn with the centre slice as every neighbour)"
             if train_info.get("same_neighbours") else "")
    if train_info.get("fov_cut"):
        alike += (f", {train_info['fov_cut']:.0%} of them cut by a field-of-view edge (air beyond a straight "
                  "edge, no tumour there)")
    if train_info.get("balance"):
        group = {"enhancement": "enhancement pattern of the tumour"}.get(train_info["balance"], train_info["balance"])
        alike += f", drawn so that each {group} weighs the same in the batches"
    if site:
        status = (f"**Not for clinical use until the site has validated it.** Trained on "
                  f"{counted(len(site['train']) + len(site['val']), 'contoured case')} of `{site['cases']}`, tested on "
                  f"{counted(len(site['test']), 'held-out case')}\n(`clinical_use: false`); the firmware refuses "
                  f"to send its output to a clinical destination.")
        data = (f"{meta['metrics']['data']}. Cases split by case folder (seed {site['seed']}): training "
                f"{', '.join(site['train'])}; validation {', '.join(site['val'])}; held out for the "
                f"results below {', '.join(site['test'])}.")
        tested = f"{counted(ev['subjects'], 'held-out case')} of the site"
        target = ("No non-learned baseline (it needs the phantoms' atlas). The phantom recipe's targets "
                  f"(Dice >= {TARGETS[seq]}) are not the site's: the site sets its acceptance on its own "
                  "validation.")
        limits = (f"- Trained and tested on {len(site['train']) + len(site['val']) + len(site['test'])} cases "
                  "of one site: it has not seen other scanners, protocols or contouring habits.\n"
                  f"- The held-out cases are few ({len(site['test'])}): the interval above says how little "
                  "they can show.\n"
                  "- Needs the site's clinical validation (review of its contours by the treating team on\n"
                  "  cases it has not seen) before `clinical_use` is set.")
    else:
        status = ("**Not for clinical use.** Trained and tested on synthetic phantom studies only\n"
                  "(`clinical_use: false`); the firmware refuses to send its output to a clinical destination.")
        data = (f"{meta['metrics']['data']}. Phantoms: the Colin27 adult brain with atlas-placed tumours (pons\n"
                "three times in four, else a thalamus), 2 to 60 cm3, infiltrating margins, mass effect, necrosis,\n"
                "enhancement patterns, vendor-style acquisitions (see `midline_model/phantom.py`).")
        tested = f"{ev['subjects']} held-out phantom studies"
        target = (f"Target for this sequence: Dice >= {TARGETS[seq]} and >= baseline + 0.05 (the paper's external\n"
                  f"test set: {PAPER_TEST[seq]}). Met: Dice {'yes' if i8['dice'] >= TARGETS[seq] else 'NO'}, margin\n"
                  f"over baseline {'yes' if i8['dice'] >= base['dice'] + 0.05 else 'NO'}, |int8 - float| <= 0.01\n"
                  f"{'yes' if abs(i8['dice'] - fl['dice']) <= 0.01 else 'NO'}.")
        limits = ("- Trained on phantoms of one adult anatomy, while DMG is mostly a paediatric disease.\n"
                  "- Not evaluated by age, vendor, field strength or slice thickness on patients; phantom contrast\n"
                  "  and texture are simpler than real tumours.\n"
                  "- Needs retraining and validation on real contoured cases before any clinical use\n"
                  "  (`python -m midline_model.site` retrains on a BraTS-style folder).")
    rows = _rows(i8, fl, base)
    return f"""# {meta['name']} {meta['version']} — model card

{status}

## What it does
Segments the GTV of a diffuse midline glioma (the {seq} abnormality) on {seq} MR series, slice by
slice ({seen}), as an int8 TFLite model run by Midline's tiled multi-scale pipeline (tiles of
{meta['input']['size']} px at {meta['scales_mm']} mm, weights {meta['scale_weights']}, threshold
{meta['threshold']}, components of at least {meta['min_component_mm3']} mm3 kept, holes filled).
ROI: `{meta['roi']['name']}`.

## Model
A GAN after Deng et al. (Frontiers in Oncology, 2025, doi:10.3389/fonc.2025.1602516): the
generator is a 2D encoder-decoder with multi-scale branches (dilations 1, 2, 4) and
spatial-channel attention (widths {cfg['widths']}, attention {cfg['attention']}, multi-scale
{cfg['multiscale']}; {train_info['params']:,} parameters); a PatchGAN discriminator; loss
Dice + BCE + {train_info['adv_weight']} x adversarial (adversarial: {train_info['adversarial']}).
Every operator is on the Edge TPU's list (checked: {meta['checks']['edgetpu']}); the Edge TPU
target is not compiled yet (`edgetpu_compiler` cannot be installed on the build machine).

## Data
{data}
Training: {'' if site else _studies(train_info)}{train_info['train_tiles']} tiles{alike}, {train_info['steps']} steps of batch
{train_info['batch']}, seed {train_info['seed']}, {train_info['seconds'] / 60:.0f} min on 2 CPU cores{_kept(train_info)}.

## Results on {tested}, through the firmware's tiling
{chr(10).join(_HEADER + rows)}

{target}

## Limits
{limits}
""" + (f"\n## This release\n{release_note}\n" if release_note else "")


def results(models: Path, ablation: list[dict], withheld: dict | None = None,
            evals: dict | None = None) -> str:
    """RESULTS.md. withheld: models trained and evaluated but not shipped, name -> (eval, reason);
    evals: each shipped model's evaluation by name, for its full table (int8, float, baseline)."""
    lines = ["# Model toolchain results", "",
             "Written by `python -m midline_model.pipeline` from the evaluation's own output; "
             "held-out phantom studies (seeds 3000 and up), through the firmware's tiled pipeline.", "",
             "## Shipped models (int8)", "",
             "| model | subjects | Dice (95% CI) | float Dice | baseline Dice | surface Dice 2 mm | HD95 in-plane (median) | volume error | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(models.glob("dmg-*/model.json")):
        m = json.loads(path.read_text())
        t = m["metrics"]["test"]
        if not t:
            continue
        seq = m["sequence"]
        ok = t["dice_int8"] >= TARGETS[seq] and t["dice_int8"] >= t["baseline_dice"] + 0.05
        lo, hi = t["dice_int8_ci95"]
        if m["name"] in (evals or {}):  # unrounded: model.json's 4 digits would round twice
            lo, hi = evals[m["name"]]["summary"]["int8"]["dice_ci95"]
        lines.append(f"| {m['name']} {m['version']} | {t['subjects']} | {t['dice_int8']:.3f} ({lo:.3f}–{hi:.3f}) | "
                     f"{t['dice_float']:.3f} | {t['baseline_dice']:.3f} | {t['surface_dice_2mm']:.3f} | "
                     f"{t['hd95_inplane_mm']:.2f} mm | {t['volume_error_pct']:.1f} % | "
                     f">= {TARGETS[seq]}: {'met' if ok else 'NOT met'} |")
    for name, ev in sorted((evals or {}).items()):
        lines += ["", f"### {name}: {ev['subjects']} held-out studies, int8 and float", "",
                  *_HEADER, *_rows(ev["summary"]["int8"], ev["summary"]["float"], ev["summary"].get("baseline"))]
    for name, (ev, reason) in (withheld or {}).items():
        i8, fl, base = (ev["summary"][k] for k in ("int8", "float", "baseline"))
        lo, hi = i8["dice_ci95"]
        per = ", ".join(f"{r['seed']}: {r['int8']['dice']:.2f}" for r in ev["per_subject"])
        lines += ["", f"## Trained, evaluated, not shipped: {name}", "", reason, "",
                  f"int8 Dice {i8['dice']:.3f} ({lo:.3f}–{hi:.3f}), float {fl['dice']:.3f}, baseline "
                  f"{base['dice']:.3f}; lesions found {i8['lesion_sensitivity']:.2f}. Per study (int8 Dice): {per}."]
    if not ablation:
        lines += ["", "## Ablation (T2)", "", "Not run yet: `make model` runs it (plain U-Net, + attention, "
                  "+ multi-scale, + adversarial, same split)."]
    if ablation:
        lines += ["", "## Ablation (T2, float, same split)", ""]
        budget = {(r["train"]["steps"], r["train"]["batch"], r.get("subjects")) for r in ablation}
        if len(budget) == 1:
            steps, batch, subjects = budget.pop()
            lines += [f"Each variant: {steps} steps of batch {batch} on the same training tiles and seed"
                      + (f", float Dice on {subjects} held-out studies" if subjects else "")
                      + "; from their training logs and evaluations.", ""]
        lines += ["| variant | parameters | Dice | surface Dice 2 mm | HD95 in-plane |", "|---|---|---|---|---|"]
        for r in ablation:
            e = r["eval"]
            lines.append(f"| {r['label']} | {r['train']['params']:,} | {e['dice']:.3f} | "
                         f"{e['surface_dice_2mm']:.3f} | {e['hd95_inplane_mm']:.2f} mm |")
        adv = next((r for r in ablation if r["train"]["adversarial"]), None)
        if adv:
            every = max(50, adv["train"]["steps"] // 8 // 50 * 50)
            lines += ["", f"Adversarial training, from the training log (every {every} steps):", "",
                      "| step | generator adversarial loss | discriminator loss | discriminator accuracy | lambda |",
                      "|---|---|---|---|---|"]
            for rec in adv["log"]:
                if rec["step"] % every == 0:
                    lines.append(f"| {rec['step']} | {rec['adv_loss']:.3f} | {rec['d_loss']:.3f} | "
                                 f"{rec['d_acc']:.3f} | {rec['lambda']:.3f} |")
    return "\n".join(lines) + "\n"
