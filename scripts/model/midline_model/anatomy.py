"""Real anatomy for phantom studies: the Colin27 brain and atlas labels from Debian's mricron-data.

Colin27 (`ch2.nii.gz`, a 1 mm T1 of one adult head, and `ch2bet.nii.gz`, its brain) gives the
anatomy; tissue classes (CSF, grey and white matter) come from the T1 intensities inside the brain
by a three-class mixture, kept soft so that partial volume survives. The JHU white-matter labels
locate the pons (pontine crossing tract, with the corticospinal tracts and medial lemnisci at its
level) and AAL the thalami, where DMG grows.

Coordinates: the templates are in RAS millimetres (MNI-like). Everything this module returns is in
DICOM patient coordinates (LPS), the frame the phantom's series are written in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

TEMPLATES = Path("/usr/share/mricron/templates")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

# JHU labels (JHU-WhiteMatter-labels-1mm.nii.txt) and AAL labels (aal.nii.txt).
JHU_PONTINE_CROSSING = 2
JHU_PONS_LEVEL = (2, 7, 8, 9, 10)  # crossing tract, corticospinal tracts, medial lemnisci
AAL_THALAMUS = {"L": 77, "R": 78}


@dataclass(frozen=True)
class Anatomy:
    """Tissue maps on the Colin27 1 mm grid and the mapping from voxel index to LPS millimetres.

    csf, gm, wm: soft tissue fractions inside the brain (they sum to 1 there, 0 outside);
    head: non-brain head tissue (scalp, muscle, marrow) as a 0..1 weight, from the T1;
    t1: the raw T1 scaled to 0..1, for the appearance of non-brain tissue;
    pons, thalamus_l, thalamus_r: boolean regions where a DMG is seeded.
    """

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    head: np.ndarray
    t1: np.ndarray
    pons: np.ndarray
    thalamus_l: np.ndarray
    thalamus_r: np.ndarray
    affine: np.ndarray  # voxel index (i, j, k, 1) -> LPS mm

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.csf.shape

    def to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) to LPS millimetres."""
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def to_index(self, lps: np.ndarray) -> np.ndarray:
        """LPS millimetres (..., 3) to fractional voxel indices."""
        inv = np.linalg.inv(self.affine)
        return lps @ inv[:3, :3].T + inv[:3, 3]

    def centroid(self, region: np.ndarray) -> np.ndarray:
        """Centre of a region in LPS mm."""
        return self.to_lps(np.argwhere(region).mean(axis=0))


def _load(name: str) -> nib.Nifti1Image:
    path = TEMPLATES / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the Debian package mricron-data provides it "
                                "(make setup installs it)")
    return nib.load(str(path))


def _resample_labels(img: nib.Nifti1Image, target: nib.Nifti1Image) -> np.ndarray:
    """Nearest-neighbour resampling of a label image onto another grid, through both affines."""
    m = np.linalg.inv(img.affine) @ target.affine
    return ndimage.affine_transform(np.asarray(img.dataobj), m[:3, :3], offset=m[:3, 3],
                                    output_shape=target.shape, order=0, mode="constant")


def _three_class_fractions(t1: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, ...]:
    """Soft CSF/GM/WM fractions from T1 intensities: 1-D k-means for the class means, then
    Gaussian memberships with a shared width, so voxels between two means are mixed."""
    v = t1[brain].astype(np.float64)
    means = np.percentile(v, [10, 50, 90])
    for _ in range(50):
        cls = np.argmin(np.abs(v[:, None] - means[None, :]), axis=1)
        new = np.array([v[cls == c].mean() for c in range(3)])
        if np.allclose(new, means):
            break
        means = new
    sigma = np.sqrt(np.mean((v - means[cls]) ** 2))
    x = t1.astype(np.float64)[..., None]
    w = np.exp(-0.5 * ((x - means) / sigma) ** 2) + 1e-12
    w /= w.sum(axis=-1, keepdims=True)
    w *= brain[..., None]
    return w[..., 0], w[..., 1], w[..., 2]


@functools.lru_cache(maxsize=1)
def load() -> Anatomy:
    """The Colin27 anatomy with its tissue maps and DMG seed regions (cached per process)."""
    t1_img, bet_img = _load("ch2.nii.gz"), _load("ch2bet.nii.gz")
    t1 = np.asarray(t1_img.dataobj).astype(np.float32)
    brain = ndimage.binary_fill_holes(np.asarray(bet_img.dataobj) > 0)
    brain = ndimage.binary_opening(brain, iterations=1)
    csf, gm, wm = _three_class_fractions(t1, brain)
    head = ndimage.gaussian_filter((t1 > 0.15 * t1.max()) & ~brain, 0.7).astype(np.float32)
    jhu = _resample_labels(_load("JHU-WhiteMatter-labels-1mm.nii.gz"), t1_img)
    aal = _resample_labels(_load("aal.nii.gz"), t1_img)
    pons = _pons_region(jhu, brain)
    return Anatomy(
        csf=csf.astype(np.float32), gm=gm.astype(np.float32), wm=wm.astype(np.float32),
        head=head, t1=t1 / t1.max(), pons=pons,
        thalamus_l=aal == AAL_THALAMUS["L"], thalamus_r=aal == AAL_THALAMUS["R"],
        affine=RAS_TO_LPS @ t1_img.affine)


def _pons_region(jhu: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The pons: brain tissue around the pontine tracts, on the axial levels of the crossing
    tract. The tracts themselves are thin; the pons is the bulk that holds them."""
    tracts = np.isin(jhu, JHU_PONS_LEVEL)
    crossing = jhu == JHU_PONTINE_CROSSING
    ks = np.nonzero(crossing.any(axis=(0, 1)))[0]
    level = np.zeros_like(tracts)
    level[:, :, ks.min():ks.max() + 1] = True
    core = ndimage.binary_dilation(tracts & level, iterations=4)
    return core & brain & level
