"""How a phantom is stored: voxel grids in assorted orientations and spacings, and byte-stable .nii.gz files.

Each subject gets a world-aligned voxel grid whose axis order and directions are given by axis codes
(RAS, LAS, LPS, PSR, ...; code i names the world direction that stored axis i runs towards) and whose
third stored axis may be a thick slice axis. The affine is always exact, so only a reader that
ignores the header gets the patient's side wrong — which is the point.

Files are gzip-compressed here with mtime 0 and no file name in the gzip header, so the same data give
byte-identical files on every run (nibabel's own gzip writer stamps the current time).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from brain3d.fsutil import atomic_write_bytes

ORIENTATIONS = ("RAS", "LAS", "LPS", "RPI", "PSR", "ASL", "LIP")
# (name, in-plane factor, slice factor) relative to the cohort's voxel size; the slice axis is stored axis 2
SPACING_PROFILES = (("iso", 1.0, 1.0, 0.5), ("thick", 0.75, 2.0, 0.3), ("fine", 0.85, 0.85, 0.2))
_AXIS = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


def storage_grid(
    orientation: str, spacing: tuple[float, float, float], fov: tuple[float, ...]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Affine (stored index → world RAS mm) and shape of a grid covering the world box `fov`.

    fov = (x_lo, y_lo, z_lo, x_hi, y_hi, z_hi) mm; stored axis i runs towards world direction orientation[i].
    """
    if sorted(_AXIS[c][0] for c in orientation) != [0, 1, 2]:
        raise ValueError(f"orientation {orientation!r} must name each world axis once")
    affine = np.eye(4)
    shape = []
    for i, code in enumerate(orientation):
        axis, sign = _AXIS[code]
        lo, hi = fov[axis], fov[axis + 3]
        n = int(round((hi - lo) / spacing[i])) + 1
        affine[:3, i] = 0.0
        affine[axis, i] = sign * spacing[i]
        affine[axis, 3] = lo if sign > 0 else lo + (n - 1) * spacing[i]
        shape.append(n)
    return affine, (shape[0], shape[1], shape[2])


def world_coordinates(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """World RAS mm of every voxel of a grid, (N, 3) float32 in C order of `shape`."""
    axes = [np.arange(n, dtype=np.float32) for n in shape]
    out = np.empty(shape + (3,), dtype=np.float32)
    for r in range(3):
        a = affine[r, :3].astype(np.float32)
        out[..., r] = (
            a[0] * axes[0][:, None, None] + a[1] * axes[1][None, :, None] + a[2] * axes[2][None, None, :]
            + np.float32(affine[r, 3])
        )
    return out.reshape(-1, 3)


def write_nifti_gz(data: np.ndarray, affine: np.ndarray, path: str | Path, compresslevel: int = 6) -> Path:
    """Write a stored-order array as .nii.gz with a scanner-space affine, byte-identically for equal input."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    raw = img.to_bytes()
    return atomic_write_bytes(path, gzip.compress(raw, compresslevel=compresslevel, mtime=0))
