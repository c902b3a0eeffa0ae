"""The axial slices the 2D baseline feeds: chosen in brain3d's model space, shown in radiological convention.

Slices come from the model-space volume (`preprocess.load_for_model`: header-based reorientation, percentile
scaling, resize), so a scan stored LPS and the same scan stored RAS give identical images, and the patient's
left is always in the same place. Each image is shown as radiology displays an axial slice (and as MedGemma
met CT/MR slices in training): anterior at the top, the patient's right on the image's left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from brain3d.errors import Brain3DError
from brain3d.preprocess import PreprocessConfig, load_for_model

METHOD_DEPTH = PreprocessConfig().size[0]  # the method's axial grid (64): slices are picked from it


def slice_indices(depth: int, n: int) -> list[int]:
    """`n` equidistant axial indices of a `depth`-slice grid: the centres of n equal slabs (n = depth: all)."""
    if not 1 <= n <= depth:
        raise Brain3DError(f"cannot pick {n} slices from a grid of {depth}; ask for 1 to {depth}")
    return [int((i + 0.5) * depth / n) for i in range(n)]


def grid_for(n: int, size: int, nonzero: bool = False) -> PreprocessConfig:
    """Model space for `n` slices of `size` x `size`: the method's 64-slice axial grid (finer if n > 64)."""
    return PreprocessConfig(size=(max(n, METHOD_DEPTH), size, size), nonzero=nonzero)


def radiological(axial: np.ndarray) -> np.ndarray:
    """(..., H, W) model-space axial slices (H posterior→anterior, W patient left→right) as displayed:
    row 0 anterior, column 0 the patient's right."""
    return np.ascontiguousarray(axial[..., ::-1, ::-1])


def axial_slices(volume: torch.Tensor | np.ndarray, n: int) -> np.ndarray:
    """(n, H, W) uint8 display images of the first channel of a model-space volume (C, D, H, W) in [0, 1]."""
    x = volume.numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    picked = x[0, slice_indices(x.shape[1], n)]  # (n, H, W)
    return np.rint(np.clip(radiological(picked), 0.0, 1.0) * 255.0).astype(np.uint8)


def load_slices(path: str | Path, n: int, size: int, nonzero: bool = False) -> np.ndarray:
    """(n, size, size) uint8 slices of one scan file, read through brain3d's io and preprocessing."""
    return axial_slices(load_for_model(path, grid_for(n, size, nonzero)).tensor, n)


def to_images(slices: np.ndarray) -> list:
    """PIL RGB images (grey in all three channels, as a PNG of a slice) of (n, H, W) uint8 slices."""
    from PIL import Image

    return [Image.fromarray(s).convert("RGB") for s in slices]
