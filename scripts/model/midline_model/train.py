"""Training the generator, with or without its adversary.

    python -m midline_model.train --seq T2 --train build/train.npz --val build/val.npz \
        --out build/dmg-t2 [--steps 3000] [--no-adversarial] [--no-attention] [--no-multiscale]

Generator loss: soft Dice + BCE + lambda * adversarial (non-saturating, on the PatchGAN's logits
for (image, predicted mask)); lambda ramps from 0 to `--adv-weight` over the first quarter of
training so the discriminator does not dominate an untrained generator. Every `--log-every`
steps a JSON line goes to `log.jsonl` (losses, discriminator accuracy, validation Dice on tiles);
weights are checkpointed so an interrupted run resumes (`--resume`).

Adversarial training wanders: with a smooth training loss, one run's validation tile Dice went
0.898, 0.797, 0.682, 0.843, 0.443, 0.818 at steps 1000 to 1500 and still 0.832, 0.908, 0.884 at
2000, 2200, 2400 (recomputing the batch-norm statistics does not explain it). So the generator
evaluated and kept is an exponential moving average of the trained one's weights (`--ema`, decay
0.995: about the last 200 steps; 0 turns it off), the one at the last step. Not the average with
the best validation tile Dice: on a plateau that choice follows noise, and on FLAIR it kept step
500 of 1000 (0.965 against 0.963 at the end), which then scored 0.914 on the test studies against
the last step's 0.937 (66 training studies, int8 Dice on the 20 test studies). The validation tile
Dice (checked every `--val-every` steps and at the last) stays in the log to watch a run; the
validation studies are disjoint from training and test studies.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from midline_model import model as M


def load_tiles(path: Path, seq: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) and masks (N, H, W, 1) as float32; C > 1 for 2.5D tiles."""
    with np.load(path) as z:
        x = z[f"{seq}_image"].astype(np.float32)
        return (x if x.ndim == 4 else x[..., None]), z[f"{seq}_mask"].astype(np.float32)[..., None]


def context_mm(path: Path) -> float:
    """The distance between a 2.5D tile file's channels in mm (0: adjacent slices, or 2D tiles)."""
    with np.load(path) as z:
        return float(z["context_mm"]) if "context_mm" in z else 0.0


def studies(path: Path, seq: str) -> list[int]:
    """The phantom seeds (or case numbers) a tile file was made from."""
    return sorted(int(s) for s in np.unique(tile_groups(path, seq, "study")))


# What --balance can weigh alike, and the array of a tile file that says it per tile.
BALANCE = {"study": "seed", "enhancement": "enhancement"}


def tile_groups(path: Path, seq: str, by: str) -> np.ndarray:
    """Each tile's group for --balance `by`: its study, or its tumour's enhancement pattern
    (phantom tiles only: a hospital's cases carry no such label)."""
    with np.load(path) as z:
        key = f"{seq}_{BALANCE[by]}"
        if key not in z:
            raise SystemExit(f"train: {path} does not say each tile's {by} (made from phantoms "
                             "by an older trainset, or from a hospital's cases): cannot balance by it")
        return z[key]


def batches(x: np.ndarray, y: np.ndarray, group: np.ndarray | None, args) -> tf.data.Dataset:
    """The training batches, one per step. Without group: the tiles shuffled, epoch after
    epoch. With group (a label per tile, --balance): tiles drawn with weights that give every
    group the same share of the batches, whatever its number of tiles (a 1 mm 3D volume gives more
    tumour slices than a 5 mm stack; a ring-enhancing tumour is one phantom in five). The seed fixes
    the stream. Neither balance is in the recipe: on T1C they moved which lesions were missed, not
    the Dice (README, "T1C")."""
    aug = augment(args.same_neighbours, args.fov_cut)
    if group is None:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=args.seed).repeat()
    else:
        _, which, count = np.unique(group, return_inverse=True, return_counts=True)
        w = 1.0 / count[which]
        drawn = np.random.default_rng([args.seed, 0x535459]).choice(
            len(x), size=args.steps * args.batch, p=w / w.sum())
        tx, ty = tf.constant(x), tf.constant(y)
        ds = tf.data.Dataset.from_tensor_slices(drawn).map(lambda i: (tf.gather(tx, i), tf.gather(ty, i)))
    return ds.map(aug).batch(args.batch, drop_remainder=True).prefetch(2)


def dice_loss(y, p, eps: float = 1.0):
    inter = tf.reduce_sum(y * p, axis=[1, 2, 3])
    denom = tf.reduce_sum(y + p, axis=[1, 2, 3])
    return 1 - tf.reduce_mean((2 * inter + eps) / (denom + eps))


def tile_dice(y: np.ndarray, p: np.ndarray) -> float:
    """Dice over all validation tiles together (thresholded at 0.5)."""
    b = p >= 0.5
    inter = np.logical_and(b, y > 0.5).sum()
    return float(2 * inter / (b.sum() + (y > 0.5).sum() + 1e-9))


def augment(same_neighbours: float = 0.0, fov_cut: float = 0.0):
    """The training tiles' random changes. same_neighbours: the share of 2.5D tiles whose
    neighbour channels are replaced by the centre slice, as on a series whose slices are alike
    (a uniform QA phantom, a thick slab): the tiles at 5 mm always differ, and a model that never
    saw alike neighbours contoured a lesion-free blob of identical slices (README). fov_cut: the
    share of tiles cut by a field-of-view edge: beyond a straight edge parallel to one side, 16 to
    112 pixels in, every channel holds the tile's lowest value (the clip floor wherever the tile
    shows air) and the mask nothing, as on a series that does not cover the head or the axial
    reformat of a coronal or sagittal slab (a model trained on whole heads found nothing on a
    96 mm field of view, README)."""
    def fn(x, y):
        flip = tf.random.uniform(()) < 0.5
        x = tf.where(flip, tf.reverse(x, axis=[1]), x)  # left-right: both hemispheres host DMG
        y = tf.where(flip, tf.reverse(y, axis=[1]), y)
        if fov_cut > 0:
            x, y = cut_field_of_view(x, y, tf.random.uniform(()) < fov_cut,
                                     tf.random.uniform((), 0, 4, dtype=tf.int32),
                                     tf.random.uniform((), 16, 113, dtype=tf.int32))
        ch = x.shape[-1]
        if ch > 1 and same_neighbours > 0:
            centre = x[..., ch // 2:ch // 2 + 1]
            x = tf.where(tf.random.uniform(()) < same_neighbours, tf.repeat(centre, ch, axis=-1), x)
        x = x * tf.random.uniform((), 0.9, 1.1) + tf.random.uniform((), -0.15, 0.15)
        return x, y
    return fn


def cut_field_of_view(x, y, cut, side, keep):
    """x (H, W, C) and y (H, W, 1) with, when cut, only `keep` rows or columns left from side
    (0 top, 1 bottom, 2 left, 3 right); x beyond holds its minimum, y nothing."""
    h, w = x.shape[0], x.shape[1]
    r = tf.broadcast_to(tf.range(h)[:, None], (h, w))
    c = tf.broadcast_to(tf.range(w)[None, :], (h, w))
    kept = tf.gather(tf.stack([r < keep, r >= h - keep, c < keep, c >= w - keep]), side)
    kept = tf.logical_or(tf.logical_not(cut), kept)[..., None]
    return tf.where(kept, x, tf.reduce_min(x)), tf.where(kept, y, tf.zeros_like(y))


class Trainer:
    def __init__(self, cfg: M.GeneratorConfig, adversarial: bool, adv_weight: float, steps: int,
                 ema: float, lr: float = 2e-3):
        self.g = M.generator(cfg)
        self.ema = self.g  # what is validated and kept
        if ema > 0:
            self.ema = M.generator(cfg)
            self.ema.set_weights(self.g.get_weights())
        self.ema_decay = ema
        self.d = M.discriminator(cfg.size, cfg.channels) if adversarial else None
        self.adv_weight = adv_weight
        self.steps = steps
        sched = tf.keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05)
        self.g_opt = tf.keras.optimizers.Adam(sched)
        self.d_opt = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.bce = tf.keras.losses.BinaryCrossentropy()
        self.logit_bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(self, x, y, lam):
        with tf.GradientTape() as gt, tf.GradientTape() as dt:
            p = self.g(x, training=True)
            seg = dice_loss(y, p) + self.bce(y, p)
            adv = tf.constant(0.0)
            d_loss = tf.constant(0.0)
            d_acc = tf.constant(0.0)
            if self.d is not None:
                real = self.d([x, y], training=True)
                fake = self.d([x, p], training=True)
                adv = self.logit_bce(tf.ones_like(fake), fake)
                d_loss = self.logit_bce(tf.ones_like(real), real) + self.logit_bce(tf.zeros_like(fake), fake)
                d_acc = (tf.reduce_mean(tf.cast(real > 0, tf.float32)) +
                         tf.reduce_mean(tf.cast(fake < 0, tf.float32))) / 2
            g_loss = seg + lam * adv
        self.g_opt.apply_gradients(zip(gt.gradient(g_loss, self.g.trainable_variables),
                                       self.g.trainable_variables))
        if self.d is not None:
            self.d_opt.apply_gradients(zip(dt.gradient(d_loss, self.d.trainable_variables),
                                           self.d.trainable_variables))
        if self.ema is not self.g:
            # The warm-up (1 + n) / (10 + n) keeps the average from remembering the random start.
            n = tf.cast(self.g_opt.iterations, tf.float32)
            decay = tf.minimum(self.ema_decay, (1 + n) / (10 + n))
            for e, w in zip(self.ema.weights, self.g.weights):  # batch-norm statistics too
                e.assign(decay * e + (1 - decay) * w)
        return seg, adv, d_loss, d_acc


def train(args) -> dict:
    tf.keras.utils.set_random_seed(args.seed)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already runs in this process (tests): its thread pools stay as they are
    cfg = M.GeneratorConfig(attention=not args.no_attention, multiscale=not args.no_multiscale)
    if args.widths:
        cfg = replace(cfg, widths=tuple(int(w) for w in args.widths.split(",")))
    x, y = load_tiles(args.train, args.seq)
    vx, vy = load_tiles(args.val, args.seq)
    cfg = replace(cfg, channels=x.shape[-1])  # 2.5D tiles carry their context slices as channels
    if vx.shape[-1] != x.shape[-1] or context_mm(args.val) != context_mm(args.train):
        raise SystemExit(f"train: {args.val} has other channels than {args.train} "
                         f"({vx.shape[-1]} at {context_mm(args.val)} mm, {x.shape[-1]} at {context_mm(args.train)} mm)")
    ds = batches(x, y, tile_groups(args.train, args.seq, args.balance) if args.balance else None, args)
    tr = Trainer(cfg, not args.no_adversarial, args.adv_weight, args.steps, args.ema)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    ckpt = tf.train.Checkpoint(g=tr.g, g_opt=tr.g_opt, **({"ema": tr.ema} if tr.ema is not tr.g else {}),
                               **({"d": tr.d, "d_opt": tr.d_opt} if tr.d else {}))
    manager = tf.train.CheckpointManager(ckpt, out / "ckpt", max_to_keep=1)
    start, before, last = 0, 0.0, None
    if args.resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        start = int(tr.g_opt.iterations.numpy())
        before, last = _logged(out / "log.jsonl", start)
    log = (out / "log.jsonl").open("a")
    t0, acc = time.time() - before, np.zeros(4)
    it = iter(ds.skip(start))  # a resumed run goes on with the batches it would have had
    for step in range(start + 1, args.steps + 1):
        bx, by = next(it)
        lam = args.adv_weight * min(1.0, step / max(1, args.steps / 4))
        acc += np.array([v.numpy() for v in tr.step(bx, by, tf.constant(lam, tf.float32))])
        if step % args.log_every == 0 or step == args.steps:
            n = args.log_every if step % args.log_every == 0 else step % args.log_every
            rec = {"step": step, "seg_loss": acc[0] / n, "adv_loss": acc[1] / n, "d_loss": acc[2] / n,
                   "d_acc": acc[3] / n, "lambda": lam, "seconds": round(time.time() - t0, 1)}
            if step % args.val_every == 0 or step == args.steps:
                rec["val_tile_dice"] = tile_dice(vy, tr.ema.predict(vx, batch_size=32, verbose=0))
                if tr.ema is not tr.g:  # the trained generator itself, for the record
                    rec["val_tile_dice_trained"] = tile_dice(vy, tr.g.predict(vx, batch_size=32, verbose=0))
                last = rec["val_tile_dice"]
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            acc[:] = 0
            manager.save(checkpoint_number=step)
    tr.ema.save_weights(str(out / "generator.weights.h5"))  # the last step's (a resumed run: its checkpoint's)
    summary = {"sequence": args.seq, "config": cfg.to_dict(), "context_mm": context_mm(args.train),
               "same_neighbours": args.same_neighbours if x.shape[-1] > 1 else 0.0,
               "fov_cut": args.fov_cut,
               "balance": args.balance,
               "adversarial": not args.no_adversarial,
               "adv_weight": args.adv_weight, "ema": args.ema, "val_every": args.val_every, "steps": args.steps, "batch": args.batch,
               "seed": args.seed, "params": int(tr.g.count_params()),
               "train_tiles": int(len(x)), "val_tiles": int(len(vx)),
               "train_studies": studies(args.train, args.seq), "val_studies": studies(args.val, args.seq),
               "kept_step": args.steps, "kept_val_tile_dice": None if last is None else round(last, 4),
               "seconds": round(time.time() - t0, 1)}
    (out / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _logged(path: Path, step: int) -> tuple[float, float | None]:
    """From the log up to `step`: the training time already spent, so a resumed run reports its
    whole duration, and the last validation tile Dice."""
    seconds, last = 0.0, None
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["step"] <= step:
                seconds = rec["seconds"]
                last = rec.get("val_tile_dice", last)
    return seconds, last


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m midline_model.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", required=True, choices=["T2", "FLAIR", "T1C"])
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--adv-weight", type=float, default=0.05)
    p.add_argument("--widths", default="", help="encoder widths, e.g. 16,32,48,64")
    p.add_argument("--ema", type=float, default=0.995,
                   help="decay of the weights' moving average that is validated and kept (0: off)")
    p.add_argument("--same-neighbours", type=float, default=0.03,
                   help="share of 2.5D tiles trained with the centre slice as every neighbour")
    p.add_argument("--fov-cut", type=float, default=0.0,
                   help="share of tiles trained cut by a field-of-view edge (augment; not in the "
                        "recipe: README, 'Fields of view')")
    p.add_argument("--balance", choices=sorted(BALANCE),
                   help="draw tiles so that every study, or every enhancement pattern, weighs the same")
    p.add_argument("--no-adversarial", action="store_true")
    p.add_argument("--no-attention", action="store_true")
    p.add_argument("--no-multiscale", action="store_true")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--resume", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(train(parser().parse_args(argv))))


if __name__ == "__main__":
    main()
