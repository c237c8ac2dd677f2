"""The segmentation GAN, after Deng et al. (Frontiers in Oncology, 2025): a generator that is a 2D
encoder-decoder with multi-scale feature extraction and spatial-channel attention, and a PatchGAN
discriminator on (image, mask) pairs.

Every layer of the generator lowers to an operator the Edge TPU maps (shared/EDGETPU.md):
CONV_2D (3x3, dilated 3x3 with equal x/y dilation, 1x1) with batch norm folded in, RELU,
MAX_POOL_2D, RESIZE_NEAREST_NEIGHBOR with default flags followed by a 3x3 conv (no transposed
convolution), CONCATENATION, AVERAGE_POOL_2D (over the whole map: the squeeze), LOGISTIC and
MUL for the attention gates, ADD for the multi-scale fusion. Static shapes, batch 1 at export.

The options switch parts off for the ablation: `attention=False` drops the channel squeeze-
excitation and the spatial gate, `multiscale=False` replaces the parallel branches with two
plain 3x3 convs. The adversarial loss is a training choice (train.py), not an architecture one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import tensorflow as tf

L = tf.keras.layers


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 128
    channels: int = 1
    widths: tuple[int, ...] = (16, 32, 48, 64)
    attention: bool = True
    multiscale: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def _conv_bn_relu(x, filters: int, kernel: int = 3, dilation: int = 1, name: str = ""):
    x = L.Conv2D(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False,
                 name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def multiscale_block(x, filters: int, name: str, multiscale: bool = True):
    """Parallel branches with receptive fields 3, 5 (dilation 2) and 9 (dilation 4), fused by a
    1x1 conv and added to a residual projection. Without multi-scale: two 3x3 convs."""
    if not multiscale:
        x = _conv_bn_relu(x, filters, name=f"{name}_a")
        return _conv_bn_relu(x, filters, name=f"{name}_b")
    branch = max(filters // 2, 8)
    b1 = _conv_bn_relu(x, branch, 3, 1, name=f"{name}_d1")
    b2 = _conv_bn_relu(x, branch, 3, 2, name=f"{name}_d2")
    b4 = _conv_bn_relu(x, branch, 3, 4, name=f"{name}_d4")
    fused = L.Concatenate(name=f"{name}_cat")([b1, b2, b4])
    fused = _conv_bn_relu(fused, filters, 1, name=f"{name}_fuse")
    skip = _conv_bn_relu(x, filters, 1, name=f"{name}_proj")
    return L.Add(name=f"{name}_add")([fused, skip])


def attention_gate(x, name: str):
    """Spatial-channel attention: squeeze-excitation over channels (whole-map AVERAGE_POOL_2D -> 1x1 conv -> RELU ->
    1x1 conv -> LOGISTIC -> MUL), then a spatial gate (1x1 conv -> LOGISTIC -> MUL). No channel
    max-pooling (CBAM's REDUCE_MAX is not an Edge TPU op)."""
    c = x.shape[-1]
    # The squeeze is a whole-map AVERAGE_POOL_2D rather than MEAN: the same average, but TFLite's
    # int8 average pool is integer arithmetic, so every build of the runtime gives the same bytes
    # (the int8 MEAN kernel rounds in float and Debian's build and TensorFlow's wheel disagree on
    # a channel now and then, which broke tile parity between the firmware and the toolchain).
    s = L.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]), name=f"{name}_gap")(x)
    s = L.Conv2D(max(c // 4, 4), 1, activation="relu", name=f"{name}_se1")(s)
    s = L.Conv2D(c, 1, activation="sigmoid", name=f"{name}_se2")(s)
    x = L.Multiply(name=f"{name}_cmul")([x, s])
    g = L.Conv2D(1, 1, activation="sigmoid", name=f"{name}_sgate")(x)
    return L.Multiply(name=f"{name}_smul")([x, g])


class NearestUp2x(L.Layer):
    """2x nearest-neighbour upsampling with align_corners and half_pixel_centers off, the flags the
    Edge TPU compiler accepts (Keras' UpSampling2D sets half_pixel_centers)."""

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        return tf.compat.v1.image.resize_nearest_neighbor(x, (2 * h, 2 * w), align_corners=False,
                                                          half_pixel_centers=False)


def generator(cfg: GeneratorConfig = GeneratorConfig(), batch_size: int | None = None) -> tf.keras.Model:
    """The generator: image tile in, per-pixel probability of GTV out (sigmoid)."""
    inp = L.Input((cfg.size, cfg.size, cfg.channels), batch_size=batch_size, name="image")
    x, skips = inp, []
    for i, w in enumerate(cfg.widths[:-1]):
        x = multiscale_block(x, w, f"enc{i}", cfg.multiscale)
        skips.append(x)
        x = L.MaxPool2D(2, name=f"pool{i}")(x)
    x = multiscale_block(x, cfg.widths[-1], "bottleneck", cfg.multiscale)
    if cfg.attention:
        x = attention_gate(x, "att_bottleneck")
    for i in reversed(range(len(cfg.widths) - 1)):
        w = cfg.widths[i]
        x = NearestUp2x(name=f"up{i}")(x)
        x = _conv_bn_relu(x, w, name=f"up{i}_conv")
        skip = attention_gate(skips[i], f"att_skip{i}") if cfg.attention else skips[i]
        x = L.Concatenate(name=f"dec{i}_cat")([x, skip])
        x = _conv_bn_relu(x, w, name=f"dec{i}_a")
        x = _conv_bn_relu(x, w, name=f"dec{i}_b")
        if cfg.attention:
            x = attention_gate(x, f"att_dec{i}")
    out = L.Conv2D(1, 1, activation="sigmoid", name="probability")(x)
    return tf.keras.Model(inp, out, name="dmg_generator")


def discriminator(size: int = 128, channels: int = 1) -> tf.keras.Model:
    """PatchGAN on (image, mask): a logit per 16x16 patch saying 'expert mask'."""
    img = L.Input((size, size, channels), name="image")
    mask = L.Input((size, size, 1), name="mask")
    x = L.Concatenate()([img, mask])
    for i, f in enumerate((32, 64, 128)):
        x = L.Conv2D(f, 4, strides=2, padding="same", use_bias=i == 0)(x)
        if i:
            x = L.BatchNormalization()(x)
        x = L.LeakyReLU(0.2)(x)
    x = L.Conv2D(128, 3, padding="same")(x)
    x = L.LeakyReLU(0.2)(x)
    out = L.Conv2D(1, 3, padding="same", name="patch_logits")(x)
    return tf.keras.Model([img, mask], out, name="patch_discriminator")


CUSTOM_OBJECTS = {"NearestUp2x": NearestUp2x}
