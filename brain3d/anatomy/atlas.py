"""Phantom anatomy: tissue probability maps of the real MNI152 (ICBM 2009 sym) template shipped with nilearn.

The template files are read straight from nilearn's package data with nibabel (importing nilearn itself
costs ~3 s per process; its loaders also resample slowly) and block-averaged to the atlas grid
(2 mm by default). Everything lives in MNI mm, RAS+ (x = patient left→right, so x < 0 is the left
hemisphere). Maps:
  gm, wm   grey / white matter probability (template tissue priors, 0..1)
  brain    brain mask (nilearn's definition: normalised T1 template > 0.2), block-averaged to 0..1
  csf      brain − gm − wm, clipped: sulcal and ventricular CSF
  ventricles  the largest connected CSF component (csf > 0.5) in a box around the lateral ventricles
              (|x| < 32, −50 < y < 35, −8 < z < 35 mm)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from brain3d.errors import Brain3DError

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
_VENTRICLE_BOX = ((-32.0, 32.0), (-50.0, 35.0), (-8.0, 35.0))


@dataclass(frozen=True)
class Atlas:
    """MNI-space maps on one grid; `affine` maps grid index (i, j, k) → MNI mm."""

    gm: np.ndarray  # (X, Y, Z) float32
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray  # (X, Y, Z) float32 0..1
    affine: np.ndarray  # (4, 4)

    @property
    def spacing(self) -> float:
        return float(self.affine[0, 0])

    @property
    def origin(self) -> np.ndarray:
        return self.affine[:3, 3]

    def mm_grid(self) -> np.ndarray:
        """MNI mm coordinates of every grid voxel, (X, Y, Z, 3) float32."""
        axes = [self.origin[a] + self.spacing * np.arange(n, dtype=np.float32) for a, n in enumerate(self.gm.shape)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).astype(np.float32)

    def to_index(self, mm: np.ndarray) -> np.ndarray:
        """(..., 3) MNI mm → (3, ...) fractional grid indices, the layout `map_coordinates` wants."""
        idx = (np.asarray(mm, dtype=np.float32) - self.origin.astype(np.float32)) / np.float32(self.spacing)
        return np.moveaxis(idx, -1, 0)

    def sample(self, name: str, mm: np.ndarray) -> np.ndarray:
        """Trilinear sample of one map at (..., 3) MNI mm; zero outside the grid."""
        return ndi.map_coordinates(getattr(self, name), self.to_index(mm), order=1, mode="constant", cval=0.0)


def nilearn_data_dir() -> Path:
    """nilearn's bundled template folder, located without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise Brain3DError("nilearn is not installed; the synthetic cohort needs its bundled MNI152 template")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [f for f in _FILES.values() if not (folder / f).is_file()]
    if missing:
        raise Brain3DError(f"nilearn's MNI152 template file {missing[0]} is missing", folder)
    return folder


@lru_cache(maxsize=2)
def load_atlas(atlas_mm: int = 2) -> Atlas:
    """Read the 1 mm template once per process and block-average it to `atlas_mm` (an integer factor)."""
    if atlas_mm < 1 or int(atlas_mm) != atlas_mm:
        raise ValueError(f"atlas_mm must be a positive integer, got {atlas_mm}")
    folder = nilearn_data_dir()
    img = nib.load(folder / _FILES["t1"])
    t1 = np.asarray(img.dataobj, dtype=np.float32)
    t1 /= t1.max()
    gm = np.asarray(nib.load(folder / _FILES["gm"]).dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(nib.load(folder / _FILES["wm"]).dataobj, dtype=np.float32) / 255.0
    brain = (t1 > 0.2).astype(np.float32)
    brain, gm, wm = (_block_mean(a, atlas_mm) for a in (brain, gm, wm))
    gm = np.minimum(gm, brain)
    wm = np.minimum(wm, brain - gm)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    affine = np.diag([float(atlas_mm)] * 3 + [1.0])
    affine[:3, 3] = img.affine[:3, 3] + (atlas_mm - 1) / 2.0  # centre of the first block
    atlas = Atlas(gm=gm, wm=wm, csf=csf, brain=brain, ventricles=np.zeros_like(csf), affine=affine)
    return Atlas(gm=gm, wm=wm, csf=csf, brain=brain, ventricles=_ventricles(atlas), affine=affine)


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return np.ascontiguousarray(a, dtype=np.float32)
    pad = [(0, (-s) % f) for s in a.shape]
    a = np.pad(a, pad)
    x, y, z = (s // f for s in a.shape)
    return np.ascontiguousarray(a.reshape(x, f, y, f, z, f).mean(axis=(1, 3, 5)), dtype=np.float32)


def _ventricles(atlas: Atlas) -> np.ndarray:
    mm = atlas.mm_grid()
    box = np.ones(atlas.csf.shape, dtype=bool)
    for a, (lo, hi) in enumerate(_VENTRICLE_BOX):
        box &= (mm[..., a] > lo) & (mm[..., a] < hi)
    labels, n = ndi.label((atlas.csf > 0.5) & box)
    if n == 0:
        raise Brain3DError("found no ventricles in the MNI152 template")
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    # soft ventricle map: CSF probability inside the (slightly dilated) largest component
    return (atlas.csf * ndi.binary_dilation(largest, iterations=1)).astype(np.float32)
