"""DMG phantom studies: real anatomy, a simulated tumour, three MR sequences, written as DICOM.

    python -m midline_model.phantom --seed 7 --out DIR [--small]

A study is deterministic from its seed. Every random choice is drawn from one generator in a fixed
order and recorded in `study.json` beside the DICOM files. The parameters and their ranges:

Tumour (`TumourParams`)
  site           pons (p = 0.75) or the left or right thalamus (DMG: about 3 in 4 are pontine)
  volume_cm3     log-uniform in [2, 60]: the GTV, i.e. the T2/FLAIR abnormality
  axes           ellipsoid semi-axis ratios, each uniform in [0.75, 1.3]
  irregularity   amplitude in [0.05, 0.35] of smoothed noise added to the ellipsoid's radius
  margin_mm      infiltration width in [1, 4]: the abnormality fades over this distance
                 outside the GTV (ill-defined margins), so f = 0.5 exactly on the GTV surface
  mass_effect    in [0.15, 0.6]: radial push of the surrounding anatomy, as a fraction of the
                 tumour's radius at its surface, decaying with the square of distance
  necrosis       p = 0.35: a necrotic core of 15 to 40 % of the radius (part of the GTV)
  enhancement    none (0.4), patchy (0.4) or ring (0.2) on T1C
  heterogeneity  in [0.03, 0.12]: smooth texture of the lesion's signal

Acquisition per series (`SeriesSpec`)
  T2 and FLAIR: 2D axial, in-plane spacing 0.4 to 1.0 mm with matrices 256 to 512 (FOV 200 to
  260 mm), slice thickness 3 to 6 mm with a gap of 0 to 20 %; T1C: 2D axial like them (p = 0.5)
  or a 1 mm 3D volume, axial or sagittal (p = 0.5 of 3D: MPRAGE is often sagittal).
  Head tilt (pitch up to 10 degrees, roll and yaw up to 5) for the whole study; slice angulation
  up to 8 degrees per 2D series; partial-volume blur over the slice profile; a smooth
  multiplicative bias field up to about 20 %; Rician noise at SNR 12 to 40; tissue intensities
  varied by up to 10 % per study; vendor (Siemens, GE, Philips) styles for names and attributes.

Ground truth: the GTV (abnormality fraction >= 0.5, averaged over the slice profile) on each
series' own grid, written as NIfTI (`<series>.gtv.nii.gz`, affine in RAS from the DICOM geometry)
with `study.json` giving, per series, the SOP Instance UID of every slice in the mask's k order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from midline_model import anatomy as anat

SEQUENCES = ("T2", "FLAIR", "T1C")

# Relative signal of each tissue per sequence (before per-study variation). T2: CSF brightest;
# FLAIR: CSF suppressed, lesion brightest; T1C: CSF dark, WM above GM, tumour hypointense.
TISSUE_SIGNAL = {
    "T2": {"csf": 1.00, "gm": 0.52, "wm": 0.38, "tumour": 0.80, "necrosis": 0.95},
    "FLAIR": {"csf": 0.08, "gm": 0.50, "wm": 0.38, "tumour": 0.88, "necrosis": 0.45},
    "T1C": {"csf": 0.12, "gm": 0.45, "wm": 0.60, "tumour": 0.40, "necrosis": 0.15,
            "enhancing": 0.95},
}
# Non-brain head tissue follows the T1's brightness (fat and marrow bright on all three).
HEAD_SIGNAL = {"T2": 0.55, "FLAIR": 0.45, "T1C": 0.85}


@dataclass
class TumourParams:
    site: str
    centre_lps: list[float]
    volume_cm3: float
    axes: list[float]
    irregularity: float
    margin_mm: float
    mass_effect: float
    necrosis_fraction: float  # 0: none
    enhancement: str  # none | patchy | ring
    heterogeneity: float  # relative spread of the lesion's signal (smooth texture)


@dataclass
class SeriesSpec:
    sequence: str
    mode: str  # 2d | 3d
    plane: str  # axial | sagittal
    rows: int
    columns: int
    pixel_spacing: list[float]  # [row spacing, column spacing] as DICOM PixelSpacing
    slice_thickness: float
    slice_spacing: float
    slices: int
    angulation_deg: list[float]  # rotations about the row and column axes
    snr: float
    bias: list[float] = field(default_factory=list)
    position: str = "HFS"  # PatientPosition: HFS, FFS, HFP or FFP


@dataclass
class Series:
    """One generated series: stored values (uint16), the GTV mask and their geometry."""

    spec: SeriesSpec
    pixels: np.ndarray  # (slices, rows, columns) uint16, stored values
    gtv: np.ndarray  # (slices, rows, columns) uint8
    orientation: np.ndarray  # (2, 3): row direction, column direction (LPS unit vectors)
    positions: np.ndarray  # (slices, 3): ImagePositionPatient of each slice
    rescale: tuple[float, float]  # slope, intercept

    def real(self) -> np.ndarray:
        """The real values: stored values through RescaleSlope and RescaleIntercept."""
        slope, intercept = self.rescale
        return self.pixels.astype(np.float32) * slope + intercept


@dataclass
class Study:
    seed: int
    vendor: str
    field_strength: float
    patient: dict
    tumour: TumourParams
    head_tilt_deg: list[float]
    series: dict[str, Series]
    lesion_free: bool = False  # the tumour was drawn (placing small stacks) but not put in
    # What makes these images other than the seed's own (generate's overrides, as canonical
    # JSON; "" for none), so that their UIDs differ from the seed's: dicomio.write_study.
    variant: str = ""


# ---- tumour ------------------------------------------------------------------------------------

def _rotation(angles_deg) -> np.ndarray:
    """Rotation about x, then y, then z (LPS axes), angles in degrees."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


SITES = ("pons", "thalamus_l", "thalamus_r")


def draw_tumour(rng: np.random.Generator, a: anat.Anatomy, site: str | None = None) -> TumourParams:
    """The tumour of a study; site, when given, replaces the drawn site (the same draws are made,
    so the other parameters stay those of the seed)."""
    u = rng.uniform()
    drawn = "pons" if u < 0.75 else ("thalamus_l" if u < 0.875 else "thalamus_r")
    site = site or drawn
    region = getattr(a, site)
    idx = np.argwhere(region)
    centre = a.centroid(region)
    # Seed near the region's centre: a random voxel of the region, pulled two thirds inwards.
    pick = a.to_lps(idx[rng.integers(len(idx))].astype(float))
    centre = centre + (pick - centre) / 3
    return TumourParams(
        site=site, centre_lps=[float(c) for c in centre],
        volume_cm3=float(math.exp(rng.uniform(math.log(2), math.log(60)))),
        axes=[float(x) for x in rng.uniform(0.75, 1.3, 3)],
        irregularity=float(rng.uniform(0.05, 0.35)),
        margin_mm=float(rng.uniform(1.0, 4.0)),
        mass_effect=float(rng.uniform(0.15, 0.6)),
        necrosis_fraction=float(rng.uniform(0.15, 0.4)) if rng.uniform() < 0.35 else 0.0,
        enhancement=str(rng.choice(["none", "patchy", "ring"], p=[0.4, 0.4, 0.2])),
        heterogeneity=float(rng.uniform(0.03, 0.12)),
    )


@dataclass
class TumourField:
    """The tumour on a local 0.5 mm grid in LPS: abnormality fraction, necrosis, enhancement."""

    origin: np.ndarray
    step: float
    abnormal: np.ndarray  # 0..1, 0.5 on the GTV surface
    necrosis: np.ndarray  # 0..1
    enhancing: np.ndarray  # 0..1
    texture: np.ndarray  # multiplicative heterogeneity of the lesion's signal, around 1
    radius_mm: float

    def sample(self, lps: np.ndarray, name: str) -> np.ndarray:
        """Trilinear samples at LPS points; zero outside the local grid (only points inside it
        are interpolated, which keeps slices far from the tumour cheap)."""
        vol = getattr(self, name)
        ijk = ((lps - self.origin) / self.step).reshape(-1, 3)
        inside = np.all((ijk >= 0) & (ijk <= np.asarray(vol.shape) - 1), axis=1)
        out = np.zeros(len(ijk), np.float32)
        if inside.any():
            out[inside] = ndimage.map_coordinates(vol, ijk[inside].T, order=1, mode="nearest")
        return out.reshape(lps.shape[:-1])


def build_tumour(t: TumourParams, rng: np.random.Generator) -> TumourField:
    """Rasterise the tumour: an irregular ellipsoid scaled to the drawn volume (bisection on its
    radius), its signed distance for the infiltrating margin, necrotic core and enhancement."""
    step = 0.5
    r_eq = (3 * t.volume_cm3 * 1000 / (4 * math.pi)) ** (1 / 3)
    half = r_eq * 1.3 * (1 + t.irregularity) * max(t.axes) + 4 * t.margin_mm + 4
    n = int(math.ceil(2 * half / step)) + 1
    origin = np.asarray(t.centre_lps) - half
    g = np.stack(np.meshgrid(*[np.arange(n) * step - half] * 3, indexing="ij"), axis=-1)
    rot = _rotation(rng.uniform(-180, 180, 3))
    local = g @ rot / np.asarray(t.axes)
    radial = np.linalg.norm(local, axis=-1)
    noise = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), sigma=r_eq / step / 2.5)
    noise /= noise.std() + 1e-12

    def core(scale: float) -> np.ndarray:
        return radial < scale * (1 + t.irregularity * noise)

    lo, hi = 0.2 * r_eq, 2.5 * r_eq
    target = t.volume_cm3 * 1000 / step ** 3
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if core(mid).sum() < target else (lo, mid)
    inside = ndimage.binary_fill_holes(core((lo + hi) / 2))
    inside = _largest_component(inside)
    sd = (ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)) * step
    abnormal = 1 / (1 + np.exp(np.clip(sd / (t.margin_mm / 2.2), -40, 40)))
    necrosis = np.zeros_like(abnormal)
    if t.necrosis_fraction > 0:
        necrosis = 1 / (1 + np.exp(np.clip((radial - t.necrosis_fraction * (lo + hi) / 2) / 0.7,
                                           -40, 40)))
        necrosis *= inside
    enhancing = _enhancement(t, sd, necrosis, inside, rng, step)
    texture = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), sigma=1.5 / step)
    texture = 1 + t.heterogeneity * texture / (texture.std() + 1e-12)
    return TumourField(origin=origin, step=step, abnormal=abnormal.astype(np.float32),
                       necrosis=necrosis.astype(np.float32),
                       enhancing=enhancing.astype(np.float32),
                       texture=texture.astype(np.float32), radius_mm=r_eq)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


def _enhancement(t: TumourParams, sd: np.ndarray, necrosis: np.ndarray, inside: np.ndarray,
                 rng: np.random.Generator, step: float) -> np.ndarray:
    if t.enhancement == "none":
        return np.zeros_like(sd)
    if t.enhancement == "ring":
        if t.necrosis_fraction > 0:
            # A rim around the necrotic core.
            edge = ndimage.gaussian_filter(necrosis, 2.0 / step)
            ring = np.clip(4 * edge * (1 - edge), 0, 1)
        else:
            ring = np.exp(-((sd + 2.0) / 1.2) ** 2)  # a rim just inside the surface
        return ring * inside
    blobs = ndimage.gaussian_filter(rng.standard_normal(sd.shape), 2.0 / step)
    blobs = np.clip((blobs - 1.2 * blobs.std()) / (blobs.std() + 1e-12), 0, 1)
    return blobs * inside


# ---- anatomy with mass effect --------------------------------------------------------------------

def _displace(lps: np.ndarray, t: TumourParams, radius: float) -> np.ndarray:
    """Where the anatomy now at `lps` came from: points are pushed radially away from the
    tumour's centre, so we look back towards it."""
    c = np.asarray(t.centre_lps)
    d = lps - c
    r = np.linalg.norm(d, axis=-1, keepdims=True) + 1e-6
    push = t.mass_effect * radius * (radius / np.maximum(r, radius)) ** 2
    return lps - d / r * np.minimum(push, r)


def _normal_signal(a: anat.Anatomy, seq: str, gains: dict) -> np.ndarray:
    s = TISSUE_SIGNAL[seq]
    v = (a.csf * s["csf"] * gains["csf"] + a.gm * s["gm"] * gains["gm"] +
         a.wm * s["wm"] * gains["wm"])
    return (v + a.head * a.t1 * HEAD_SIGNAL[seq] * gains["head"]).astype(np.float32)


# ---- acquisition ---------------------------------------------------------------------------------

VENDORS = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips")


def draw_series(rng: np.random.Generator, seq: str, small: bool) -> SeriesSpec:
    three_d = seq == "T1C" and rng.uniform() < 0.5
    if small:
        return SeriesSpec(sequence=seq, mode="2d", plane="axial", rows=160, columns=160,
                          pixel_spacing=[1.25, 1.25], slice_thickness=5.0, slice_spacing=5.0,
                          slices=14, angulation_deg=[float(x) for x in rng.uniform(-4, 4, 2)],
                          snr=float(rng.uniform(15, 40)))
    if three_d:
        plane = "sagittal" if rng.uniform() < 0.5 else "axial"
        m = int(rng.choice([256, 320]))
        return SeriesSpec(sequence=seq, mode="3d", plane=plane, rows=m, columns=m,
                          pixel_spacing=[256 / m] * 2, slice_thickness=1.0, slice_spacing=1.0,
                          slices=176 if plane == "sagittal" else 160, angulation_deg=[0.0, 0.0],
                          snr=float(rng.uniform(15, 40)))
    m = int(rng.choice([256, 320, 384, 448, 512]))
    fov = rng.uniform(max(200, 0.4 * m), min(260, 1.0 * m))
    px = round(fov / m, 4)
    thick = round(float(rng.uniform(3, 6)), 1)
    gap = float(rng.choice([0.0, 0.1, 0.2]))
    spacing = round(thick * (1 + gap), 2)
    return SeriesSpec(sequence=seq, mode="2d", plane="axial", rows=m, columns=m,
                      pixel_spacing=[px, px], slice_thickness=thick, slice_spacing=spacing,
                      slices=int(math.ceil(150 / spacing)),
                      angulation_deg=[float(x) for x in rng.uniform(-8, 8, 2)],
                      snr=float(rng.uniform(12, 40)))


# Row and column directions of each plane for a head-first supine patient (LPS).
PLANES = {
    "axial": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
    "coronal": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "sagittal": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
}
POSITIONS = {"HFS": (1.0, 1.0, 1.0), "FFS": (-1.0, 1.0, 1.0), "HFP": (-1.0, -1.0, 1.0),
             "FFP": (1.0, -1.0, 1.0)}


def series_geometry(spec: SeriesSpec, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column directions and the position of every slice, centred on `centre`. The
    patient's position on the table flips the image axes the scanner writes in patient
    coordinates (feet first: left-right; prone: also anterior-posterior)."""
    row, col = PLANES[spec.plane]
    flip = np.array(POSITIONS[spec.position])
    row, col = row * flip, col * flip
    rot = _rotation([spec.angulation_deg[0], spec.angulation_deg[1], 0.0])
    row, col = rot @ row, rot @ col
    normal = np.cross(row, col)
    dr, dc = spec.pixel_spacing
    corner = centre - row * dc * (spec.columns - 1) / 2 - col * dr * (spec.rows - 1) / 2
    k = np.arange(spec.slices) - (spec.slices - 1) / 2
    positions = corner + k[:, None] * spec.slice_spacing * normal
    return np.stack([row, col]), positions


def _bias_field(rng: np.random.Generator, shape) -> tuple[np.ndarray, list[float]]:
    coef = rng.uniform(-0.12, 0.12, 6)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    log = (coef[0] * x + coef[1] * y + coef[2] * z + coef[3] * x * y + coef[4] * x * x
           + coef[5] * y * y)
    return np.exp(log).astype(np.float32), [float(c) for c in coef]


def acquire(spec: SeriesSpec, a: anat.Anatomy, normal_signal: np.ndarray, tumour: TumourField | None,
            t: TumourParams, sig: dict, tilt: np.ndarray, centre: np.ndarray,
            rng: np.random.Generator, keep=None) -> Series:
    """Sample the anatomy and tumour on the series grid, slice by slice, with the slice profile,
    then add bias field and Rician noise and store as unsigned 16-bit values. tumour None: the
    brain without a lesion and without its mass effect.

    keep(positions, normal, tumour) may choose a subset of slice indices (training makes only the slices
    it uses); the others are not computed and are absent from the result."""
    orient, positions = series_geometry(spec, centre)
    if keep is not None:
        positions = positions[keep(positions, np.cross(*orient), t)]
        spec = dataclasses.replace(spec, slices=len(positions))
    row, col = orient
    normal = np.cross(row, col)
    dr, dc = spec.pixel_spacing
    jj, ii = np.meshgrid(np.arange(spec.rows), np.arange(spec.columns), indexing="ij")
    plane = ii[..., None] * dc * row + jj[..., None] * dr * col
    n_sub = max(1, int(round(spec.slice_thickness / 1.0)))
    offsets = (np.arange(n_sub) + 0.5) / n_sub * spec.slice_thickness - spec.slice_thickness / 2
    img = np.zeros((spec.slices, spec.rows, spec.columns), np.float32)
    gtv = np.zeros_like(img, dtype=np.uint8)
    pivot = np.asarray(t.centre_lps)  # the head is tilted about the tumour's centre
    for k, pos in enumerate(positions):
        acc = np.zeros((spec.rows, spec.columns), np.float32)
        frac = np.zeros_like(acc)
        for off in offsets:
            p = pos + plane + off * normal  # scanner (patient) coordinates
            q = (p - pivot) @ tilt + pivot  # into the head's own frame
            if tumour is None:
                f, src = np.zeros(q.shape[:-1], np.float32), a.to_index(q)
            else:
                f = tumour.sample(q, "abnormal")
                src = a.to_index(_displace(q, t, tumour.radius_mm))
            base = ndimage.map_coordinates(normal_signal, src.reshape(-1, 3).T, order=1,
                                           mode="constant").reshape(f.shape)
            if f.any():
                nec = tumour.sample(q, "necrosis")
                lesion = (sig["tumour"] * (1 - nec) + sig["necrosis"] * nec) * \
                    tumour.sample(q, "texture")
                if "enhancing" in sig:
                    enh = tumour.sample(q, "enhancing")
                    lesion = lesion * (1 - enh) + sig["enhancing"] * enh
            else:
                lesion = 0.0
            # Tumour replaces brain tissue only where there is brain (or tumour pushing it).
            acc += (1 - f) * base + f * lesion
            frac += f
        img[k] = acc / n_sub
        gtv[k] = (frac / n_sub) >= 0.5
    bias, spec.bias = _bias_field(rng, img.shape)
    img *= bias
    brain_level = float(np.percentile(img[img > 0.05], 60)) if (img > 0.05).any() else 1.0
    sigma = brain_level / spec.snr
    noisy = np.hypot(img + rng.normal(0, sigma, img.shape).astype(np.float32),
                     rng.normal(0, sigma, img.shape).astype(np.float32))
    return _store(spec, noisy, gtv, orient, positions, rng)


def _store(spec, values, gtv, orient, positions, rng) -> Series:
    top = float(rng.uniform(1500, 4000))
    scaled = values / (values.max() + 1e-12) * top
    slope, intercept = 1.0, 0.0
    if rng.uniform() < 0.3:  # Philips-style rescaling: stored values map back through a slope
        slope = round(float(rng.uniform(0.8, 2.5)), 6)
        scaled = scaled / slope
    stored = np.clip(np.round(scaled), 0, 65535).astype(np.uint16)
    return Series(spec=spec, pixels=stored, gtv=gtv, orientation=orient, positions=positions,
                  rescale=(slope, intercept))


# ---- the study -----------------------------------------------------------------------------------

def _tumour_draw(seed: int, site: str | None = None) -> tuple[np.random.Generator, TumourParams]:
    """A study's random stream, and its tumour, the stream's first draws."""
    rng = np.random.default_rng([seed, 0x4D494C])  # "MIL": phantoms never share a stream with training
    return rng, draw_tumour(rng, anat.load(), site)


def tumour_of(seed: int) -> TumourParams:
    """The tumour of a seed's study without making the study (training's balance by pattern)."""
    return _tumour_draw(seed)[1]


def generate(seed: int, small: bool = False, keep=None, axial_only: bool = False,
             position: str | None = None, plane: str | None = None, site: str | None = None,
             spec: dict | None = None, lesion_free: bool = False) -> Study:
    """The study of a seed. keep: see acquire. axial_only acquires a drawn sagittal 3D series
    as axial instead (training tiles: the firmware reformats 3D series to axial before the
    model sees them). position and plane override every series' patient position and plane,
    site the tumour's site, and spec any SeriesSpec field of every series (orientation tests:
    a lesion on one side, anisotropic pixels, tilted or thin-slice stacks). The tumour is the
    seed's whatever the overrides; a spec that changes a series' size changes the noise drawn
    for the series after it. lesion_free leaves the tumour out (the same draws are made): what
    the models must find nothing in."""
    check_spec(spec or {})
    rng, t = _tumour_draw(seed, site)
    a = anat.load()
    tumour = build_tumour(t, rng)
    tilt_deg = [float(rng.uniform(-10, 10)), float(rng.uniform(-5, 5)), float(rng.uniform(-5, 5))]
    tilt = _rotation(tilt_deg)
    vendor = str(rng.choice(VENDORS))
    field_t = float(rng.choice([1.5, 3.0]))
    # Centre 2D stacks on the brain (small studies: on the tumour, so the lesion is in view).
    brain_centre = a.centroid(a.csf + a.gm + a.wm > 0.5) + np.array([0.0, 0.0, -10.0])
    centre = np.asarray(t.centre_lps) if small else brain_centre
    series = {}
    for seq in SEQUENCES:
        gains = {k: float(rng.uniform(0.9, 1.1)) for k in ("csf", "gm", "wm", "head")}
        sig = {k: v * float(rng.uniform(0.93, 1.07)) for k, v in TISSUE_SIGNAL[seq].items()}
        spec_s = draw_series(rng, seq, small)
        if axial_only and spec_s.plane == "sagittal":
            spec_s = dataclasses.replace(spec_s, plane="axial", slices=160)
        if plane:
            spec_s = dataclasses.replace(spec_s, plane=plane)
        if position:
            spec_s = dataclasses.replace(spec_s, position=position)
        spec_s = dataclasses.replace(spec_s, **(spec or {}))
        normal = _normal_signal(a, seq, gains)
        c = centre if spec_s.mode == "2d" else brain_centre
        series[seq] = acquire(spec_s, a, normal, None if lesion_free else tumour, t, sig, tilt, c, rng, keep)
    patient = _patient(rng, seed)
    overrides = {k: v for k, v in (("position", position), ("plane", plane), ("site", site),
                                    ("spec", spec), ("lesion_free", lesion_free)) if v}
    return Study(seed=seed, vendor=vendor, field_strength=field_t, patient=patient, tumour=t,
                 head_tilt_deg=tilt_deg, series=series, lesion_free=lesion_free,
                 variant=json.dumps(overrides, sort_keys=True) if overrides else "")


# SeriesSpec fields that --spec may set, with their types.
SPEC_OVERRIDES = {"rows": int, "columns": int, "pixel_spacing": list, "slice_thickness": float,
                  "slice_spacing": float, "slices": int, "angulation_deg": list, "snr": float}


def check_spec(spec: dict) -> None:
    """Refuses an override of a field that does not exist or may not be set (mode and plane
    name the acquisition and the series' names; position and plane have their own options)."""
    for k, v in spec.items():
        if k not in SPEC_OVERRIDES:
            raise ValueError(f"spec: {k!r} cannot be set (one of {', '.join(SPEC_OVERRIDES)})")
        want = SPEC_OVERRIDES[k]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) if want is float else \
            isinstance(v, want) and not isinstance(v, bool)
        if not ok or (want is list and (len(v) != 2 or not all(isinstance(x, (int, float)) for x in v))):
            raise ValueError(f"spec: {k!r} = {v!r} is not a {want.__name__}"
                             + (" of two numbers" if want is list else ""))


def _patient(rng: np.random.Generator, seed: int) -> dict:
    age = int(rng.integers(4, 19))
    return {"name": f"PHANTOM^DMG{seed:04d}", "id": f"MIDLINE-PH-{seed:04d}",
            "sex": str(rng.choice(["F", "M"])), "age_years": age,
            "birth_date": f"{2026 - age:04d}0101"}


def study_json(study: Study, uids: dict) -> dict:
    return {
        "schema": "midline.phantom/1",
        "seed": study.seed,
        "vendor": study.vendor,
        "field_strength_t": study.field_strength,
        "patient": study.patient,
        "head_tilt_deg": study.head_tilt_deg,
        "tumour": None if study.lesion_free else dataclasses.asdict(study.tumour),
        "uids": {k: v for k, v in uids.items() if k in ("study", "frame_of_reference")},
        "series": {
            seq: {
                "folder": seq,
                "gtv": f"{seq}.gtv.nii.gz",
                "gtv_voxels": int(s.gtv.sum()),
                "gtv_cm3": float(s.gtv.sum() * s.spec.pixel_spacing[0] * s.spec.pixel_spacing[1]
                                 * s.spec.slice_spacing / 1000),
                "series_instance_uid": uids[seq]["series"],
                "sop_instance_uids": uids[seq]["instances"],
                "spec": dataclasses.asdict(s.spec),
                "rescale": list(s.rescale),
            } for seq, s in study.series.items()
        },
    }


def write(study: Study, out: Path) -> None:
    """The study as DICOM (one folder per series), the GTV masks and study.json."""
    from midline_model import dicomio

    out.mkdir(parents=True, exist_ok=True)
    uids = dicomio.write_study(study, out)
    for seq, s in study.series.items():
        nib.save(nib.Nifti1Image(np.ascontiguousarray(s.gtv.transpose(2, 1, 0)),
                                 dicomio.nifti_affine(s.orientation, s.positions, s.spec)),
                 str(out / f"{seq}.gtv.nii.gz"))
    (out / "study.json").write_text(json.dumps(study_json(study, uids), indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m midline_model.phantom", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--small", action="store_true",
                   help="a downsized study (160x160, 14 slices of 5 mm around the tumour) for tests")
    p.add_argument("--position", choices=sorted(POSITIONS), help="patient position of every series")
    p.add_argument("--plane", choices=sorted(PLANES), help="plane of every series")
    p.add_argument("--site", choices=SITES, help="the tumour's site instead of the drawn one")
    p.add_argument("--lesion-free", action="store_true", help="the brain without its tumour")
    p.add_argument("--spec", type=json.loads, default={},
                   help="JSON object of acquisition fields set on every series, named as in "
                        "study.json's spec: " + ", ".join(SPEC_OVERRIDES))
    args = p.parse_args(argv)
    try:
        check_spec(args.spec)
    except ValueError as e:
        p.error(str(e))
    study = generate(args.seed, small=args.small, position=args.position, plane=args.plane,
                     site=args.site, spec=args.spec, lesion_free=args.lesion_free)
    write(study, args.out)
    t = study.tumour
    print(f"phantom {args.seed}: {'lesion-free, the drawn tumour left out: ' if args.lesion_free else ''}{t.site}, {t.volume_cm3:.1f} cm3, necrosis "
          f"{t.necrosis_fraction:.2f}, enhancement {t.enhancement}; "
          + ", ".join(f"{k} {s.spec.mode} {s.spec.plane} {s.spec.rows}x{s.spec.columns}x"
                      f"{s.spec.slices}" for k, s in study.series.items()))


if __name__ == "__main__":
    main()
