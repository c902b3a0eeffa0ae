"""Test volumes with known physical content, stored in any orientation (shared by several test modules)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

BLOB_WORLD = (-30.0, 10.0, 5.0)  # RAS mm: in the patient's LEFT hemisphere (x < 0)
BLOB_RIGHT = (30.0, 10.0, 5.0)  # its mirror: the patient's RIGHT hemisphere
OBLIQUE_DEG = (35.0, 40.0, 0.0)  # rotations about z (yaw), x (pitch) and y (roll): >= 30 degrees in two planes


def world_image(points: np.ndarray, blob: tuple[float, float, float] = BLOB_WORLD) -> np.ndarray:
    """A smooth 'head' ellipsoid with a bright blob (default: in the left hemisphere), at (..., 3) world mm."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    head = 1.0 / (1.0 + np.exp(((x / 60) ** 2 + (y / 75) ** 2 + (z / 55) ** 2 - 1.0) * 12))
    bx, by, bz = blob
    blob = np.exp(-((x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2) / (2 * 8.0**2))
    gradient = 0.2 * (y + 75) / 150  # anterior brighter: catches an A/P flip too
    return (100 * head * (1 + gradient) + 300 * blob).astype(np.float32)


def ras_grid(shape=(64, 76, 56), spacing=(2.5, 2.5, 2.5)) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) RAS-stored array sampling `world_image`, with its affine (centred on the origin)."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * np.array(spacing)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    return world_image(world), affine


MODEL_SPACING = 4.0
MODEL_SHAPE = (14, 19, 16)  # (D, H, W)


def model_axes_head() -> tuple[np.ndarray, np.ndarray]:
    """A (D, H, W) array written straight from the model-axes convention (D = inferior→superior, H = posterior→
    anterior, W = patient left→right) on a grid centred on the world origin, and the world mm of its voxels."""
    d, h, w = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * MODEL_SPACING for n in MODEL_SHAPE], indexing="ij")
    world = np.stack([w, h, d], axis=-1)  # x from W, y from H, z from D
    return world_image(world), world


def rotation(angles_deg: tuple[float, float, float] = OBLIQUE_DEG) -> np.ndarray:
    """3x3 rotation: about z by angles[0], then about x by angles[1], then about y by angles[2] (degrees)."""
    a, b, c = np.deg2rad(angles_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    ry = np.array([[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]])
    return ry @ rx @ rz


def oblique_grid(shape=(60, 64, 52), spacing=(3.0, 3.0, 3.5), angles_deg=OBLIQUE_DEG, centre=(0.0, 0.0, 0.0),
                 blob: tuple[float, float, float] = BLOB_WORLD) -> tuple[np.ndarray, np.ndarray]:
    """An oblique acquisition of `world_image`: voxel axes rotated by `angles_deg` (direction cosines not aligned with
    the patient's axes), the grid centred on `centre` (world mm). Returns the stored array and its affine."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(angles_deg) @ np.diag(spacing)
    affine[:3, 3] = np.asarray(centre) - affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return world_image(idx @ affine[:3, :3].T + affine[:3, 3], blob), affine


def voxel_world(affine: np.ndarray, shape) -> np.ndarray:
    """(*shape, 3) world mm of every voxel centre of a grid, computed here with plain numpy (the tests' oracle)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    return idx @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]


def reoriented(data: np.ndarray, affine: np.ndarray, codes: str) -> tuple[np.ndarray, np.ndarray]:
    """Store the same physical image with axis codes `codes` (e.g. 'LPS', 'PSR'), affine adjusted to match."""
    start = nib.orientations.io_orientation(affine)
    target = nib.orientations.axcodes2ornt(tuple(codes))
    transform = nib.orientations.ornt_transform(start, target)
    out = nib.orientations.apply_orientation(data, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, data.shape)
    assert "".join(nib.aff2axcodes(new_affine)) == codes
    return np.ascontiguousarray(out), new_affine


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_dicom_series(data_ijk: np.ndarray, affine_ras: np.ndarray, folder: Path, series_uid: str) -> Path:
    """Write an (i, j, k) int16 array as a DICOM series (one file per k slice) with the given RAS affine.

    ITK's GDCM writer sets the process locale to "C" (text files then default to ASCII); it is put back after."""
    import locale

    import SimpleITK as sitk

    saved = {cat: locale.setlocale(cat) for cat in (locale.LC_CTYPE, locale.LC_NUMERIC)}
    try:
        return _write_dicom_series(sitk, data_ijk, affine_ras, folder, series_uid)
    finally:
        for cat, value in saved.items():
            locale.setlocale(cat, value)


def _write_dicom_series(sitk, data_ijk: np.ndarray, affine_ras: np.ndarray, folder: Path, series_uid: str) -> Path:

    folder.mkdir(parents=True, exist_ok=True)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    direction = lps[:3, :3] / spacing
    row, col = direction[:, 0], direction[:, 1]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(data_ijk.shape[2]):
        sl = sitk.GetImageFromArray(data_ijk[:, :, k].T.astype(np.int16))  # array (j, i) → image (i, j)
        sl.SetSpacing((float(spacing[0]), float(spacing[1])))
        pos = lps[:3, :3] @ np.array([0, 0, k]) + lps[:3, 3]
        tags = {
            "0008|0060": "MR",
            "0020|000e": series_uid,
            "0020|000d": "1.2.826.0.1.3680043.8.498.1",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in pos),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*row, *col)),
            "0018|0050": f"{spacing[2]:.6f}",
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{series_uid.replace('.', '_')}_{k:04d}.dcm"))
        writer.Execute(sl)
    return folder
