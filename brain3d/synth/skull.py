"""A head around a skull-stripped phantom: CSF rim, skull tables and marrow, galea, scalp fat, a neck, air noise.

Phantoms are skull-stripped (exact zeros outside the brain), so the brain mask is known exactly: it is the
nonzero set of the rendered image. Planting a head around it gives a raw-looking scan on which a skull
stripper can be scored by Dice against that mask. Layers follow the distance (mm) from the brain, with a
smoothly varying thickness so the head is not a perfect offset of the brain:

    0 – 2.5   CSF          2.5 – 4   inner table (bone)    4 – 7   diploe (marrow fat)
    7 – 8.5   outer table  8.5 – 10.5  galea / muscle      10.5 – 15  scalp fat        beyond: air
and a soft-tissue neck column under the skull base. Intensities are multiples of the brain's median
signal, per sequence (fat is bright on T1, bone and air dark on everything, CSF dark on FLAIR/T1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from brain3d.fsutil import stable_int
from brain3d.orientation import spacing_of

# (outer edge mm, tissue) from the brain outwards
LAYERS = ((2.5, "csf"), (4.0, "bone"), (7.0, "marrow"), (8.5, "bone"), (10.5, "muscle"), (15.0, "fat"))
# tissue intensity as a multiple of the brain's median signal
TISSUE_LEVEL = {
    "flair": {"csf": 0.15, "bone": 0.03, "marrow": 0.75, "muscle": 0.45, "fat": 1.05},
    "t1": {"csf": 0.25, "bone": 0.03, "marrow": 1.10, "muscle": 0.55, "fat": 1.35},
    "t1ce": {"csf": 0.25, "bone": 0.03, "marrow": 1.10, "muscle": 0.60, "fat": 1.35},
    "t2": {"csf": 1.60, "bone": 0.03, "marrow": 0.90, "muscle": 0.40, "fat": 0.95},
}
NECK_MM = 40.0  # radius of the neck column
NOISE = 0.03  # Rician sigma as a fraction of the brain's median signal


@dataclass(frozen=True)
class Head:
    image: np.ndarray  # stored-order float32, the brain untouched and a head around it
    brain: np.ndarray  # bool, the true brain mask (nonzero voxels of the phantom)


def add_head(image: np.ndarray, affine: np.ndarray, sequence: str = "flair", seed: int = 0) -> Head:
    """Plant a head around a skull-stripped stored-order phantom image; the affine gives voxel sizes in mm."""
    if sequence not in TISSUE_LEVEL:
        raise ValueError(f"no head contrast for sequence {sequence!r}; expected one of {sorted(TISSUE_LEVEL)}")
    brain = image > 0
    if not brain.any():
        raise ValueError("the phantom image is empty: no brain to put a head around")
    rng = np.random.default_rng(stable_int("synth-head", seed, sequence))
    spacing = spacing_of(affine)
    ref = float(np.median(image[brain]))
    dist = ndi.distance_transform_edt(~brain, sampling=spacing).astype(np.float32)
    wobble = _smooth_noise(image.shape, spacing, rng)  # stretches every layer by 0.8 … 1.2
    scaled = dist / (1.0 + 0.2 * wobble)
    levels = TISSUE_LEVEL[sequence]
    out = np.zeros(image.shape, np.float32)
    inner = 0.0
    for outer, tissue in LAYERS:
        out[(scaled > inner) & (scaled <= outer)] = levels[tissue] * ref
        inner = outer
    neck = _neck(brain, affine, spacing) & (scaled > LAYERS[-1][0])
    out[neck] = levels["muscle"] * ref
    out = ndi.gaussian_filter(out, sigma=0.6)  # partial volume at the layer borders
    out[brain] = image[brain]
    sigma = np.float32(NOISE * ref)
    noisy = np.sqrt((out + rng.standard_normal(out.shape, dtype=np.float32) * sigma) ** 2
                    + (rng.standard_normal(out.shape, dtype=np.float32) * sigma) ** 2)
    noisy[brain] = image[brain]  # the brain keeps its own (already noisy) values
    return Head(image=noisy.astype(np.float32), brain=brain)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def _smooth_noise(shape: tuple[int, ...], spacing: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=[20.0 / s for s in spacing])
    return field / max(float(np.abs(field).max()), 1e-6)


def _neck(brain: np.ndarray, affine: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Voxels below the brain's lowest fifth, within NECK_MM (world x-y) of the brain's lower centroid."""
    idx = np.indices(brain.shape, dtype=np.float32).reshape(3, -1).T
    world = idx @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3].astype(np.float32)
    wb = world[brain.reshape(-1)]
    z_lo, z_hi = float(wb[:, 2].min()), float(wb[:, 2].max())
    low = wb[wb[:, 2] < z_lo + 0.2 * (z_hi - z_lo)]
    cx, cy = float(low[:, 0].mean()), float(low[:, 1].mean())
    r2 = (world[:, 0] - cx) ** 2 + (world[:, 1] - cy) ** 2
    return ((world[:, 2] < z_lo + 0.2 * (z_hi - z_lo)) & (r2 < NECK_MM**2)).reshape(brain.shape)
