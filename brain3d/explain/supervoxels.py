"""Supervoxels: 3D SLIC inside a brain mask, computed once per scan on the model grid; background is label 0 and
never a feature (the reference code gave LIME the background as one more feature)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from brain3d.errors import ExplainError


def brain_mask(volume: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """(C, D, H, W) model tensor in [0, 1] → (D, H, W) bool: voxels above `threshold` in any channel, holes filled,
    the largest connected component kept (skull-stripped scans have zero background; stray bright specks go)."""
    fg = ndi.binary_fill_holes(np.asarray(volume).max(axis=0) > threshold)
    labels, n = ndi.label(fg)
    if n <= 1:
        return fg
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def slic_supervoxels(volume: np.ndarray, mask: np.ndarray, n_segments: int, spacing: Sequence[float],
                     compactness: float = 0.1, source: str | None = None) -> np.ndarray:
    """(C, D, H, W) volume + (D, H, W) mask → (D, H, W) int32 labels: 0 outside the mask, 1..S consecutive inside.

    SLIC runs on the intensities (channels last) with the voxel spacing in mm, so supervoxels are compact in
    millimetres on anisotropic grids and follow tissue boundaries where intensities change."""
    from skimage.segmentation import slic

    if int(mask.sum()) < n_segments:
        raise ExplainError(f"has {int(mask.sum())} brain voxels on the model grid, fewer than the {n_segments} "
                           "supervoxels asked for", source)
    image = np.moveaxis(np.asarray(volume, dtype=np.float64), 0, -1)  # (D, H, W, C)
    raw = slic(image, n_segments=n_segments, compactness=compactness, mask=mask, start_label=1,
               channel_axis=-1, spacing=np.asarray(spacing, dtype=np.float64))
    return relabel(np.where(mask, raw, 0))


def relabel(labels: np.ndarray) -> np.ndarray:
    """Labels made consecutive (0 stays 0, the others become 1..S in increasing order of their old value)."""
    values, inverse = np.unique(labels, return_inverse=True)
    offset = 0 if values[0] == 0 else 1
    return (inverse.reshape(labels.shape) + offset).astype(np.int32)


def centroids(labels: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) mean voxel index (d, h, w) of labels 1..n."""
    idx = np.indices(labels.shape).reshape(3, -1).T.astype(np.float64)  # (V, 3)
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    sums = np.stack([np.bincount(flat, weights=idx[:, k], minlength=n + 1)[1:] for k in range(3)], axis=1)
    return sums / np.maximum(counts, 1.0)[:, None]
