"""The one helper that owns orientation.

Model tensors use axes (D, H, W) = (inferior→superior, posterior→anterior, patient left→right):
the RAS+ array (x, y, z) transposed to (z, y, x). Index 0 along W is the patient's far left.
Everything that reorients, transposes or mirrors a volume calls into this module, and nothing else does.
"""

from __future__ import annotations

from typing import TypeVar

import nibabel as nib
import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

# Permutation from RAS array axes (x, y, z) to model axes (D, H, W) = (z, y, x); it is its own inverse.
RAS_TO_MODEL = (2, 1, 0)
MODEL_AXIS_NAMES = ("D (inferior→superior)", "H (posterior→anterior)", "W (patient left→right)")


def orientation_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Axis codes of a voxel→world affine, e.g. ('L', 'P', 'S') for an LPS-stored volume."""
    return tuple(nib.aff2axcodes(np.asarray(affine, dtype=np.float64)))  # type: ignore[return-value]


def to_model_axes(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a stored array (spatial axes first, optional trailing channel axis) to model axes.

    Returns (data in (D, H, W) or (C, D, H, W), affine mapping model index (d, h, w, 1) → world RAS mm).
    The reorientation uses the header affine alone: the closest canonical (RAS+) axis order and flips.
    """
    affine = np.asarray(affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(data, ornt)  # (X, Y, Z[, C])
    ras_affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape[:3])
    if ras.ndim == 4:
        model = np.transpose(ras, (3, 2, 1, 0))  # (C, D, H, W)
    else:
        model = np.transpose(ras, RAS_TO_MODEL)  # (D, H, W)
    return np.ascontiguousarray(model), ras_affine @ _swap_xz()


def model_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `to_model_axes` for writing: (D, H, W) or (C, D, H, W) → RAS array (X, Y, Z[, C]) + affine."""
    if data.ndim == 4:
        ras = np.transpose(data, (3, 2, 1, 0))
    elif data.ndim == 3:
        ras = np.transpose(data, RAS_TO_MODEL)
    else:
        raise ValueError(f"expected a (D, H, W) or (C, D, H, W) array, got shape {data.shape}")
    return np.ascontiguousarray(ras), np.asarray(affine, dtype=np.float64) @ _swap_xz()


def from_model_axes(data: np.ndarray, affine: np.ndarray, codes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `to_model_axes`: a (D, H, W) or (C, D, H, W) model-axes array and its affine → the array in the
    stored axis order `codes` (e.g. ('L', 'P', 'S'); trailing channel axis) and that grid's voxel→world affine,
    so that a map computed in model axes lands voxel for voxel on the scan's own stored grid."""
    ras, ras_affine = model_to_ras(data, affine)  # (X, Y, Z[, C])
    transform = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")),
                                                nib.orientations.axcodes2ornt(tuple(codes)))
    stored = nib.orientations.apply_orientation(ras, transform)
    return np.ascontiguousarray(stored), ras_affine @ nib.orientations.inv_ornt_aff(transform, ras.shape[:3])


def flip_left_right(x: ArrayLike) -> ArrayLike:
    """Mirror the patient's left and right: reverse the last (W) axis of a model-space array or tensor."""
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(-1,))
    return np.ascontiguousarray(np.flip(x, axis=-1))


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along each index axis of an affine."""
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))  # type: ignore[return-value]


def index_to_world(affine: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Map (..., 3) index coordinates through a 4×4 affine to world mm."""
    index = np.asarray(index, dtype=np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def world_to_index(affine: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Map (..., 3) world mm through the inverse of a 4×4 affine to (fractional) indices."""
    inv = np.linalg.inv(affine)
    return np.asarray(world, dtype=np.float64) @ inv[:3, :3].T + inv[:3, 3]


def _swap_xz() -> np.ndarray:
    """Index permutation matrix (i, j, k) ↔ (k, j, i) in homogeneous form."""
    p = np.zeros((4, 4))
    p[0, 2] = p[1, 1] = p[2, 0] = p[3, 3] = 1.0
    return p
