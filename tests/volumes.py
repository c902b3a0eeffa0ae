"""Test volumes with known physical content, stored in any orientation (shared by several test modules)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

BLOB_WORLD = (-30.0, 10.0, 5.0)  # RAS mm: in the patient's LEFT hemisphere (x < 0)


def world_image(points: np.ndarray) -> np.ndarray:
    """A smooth 'head' ellipsoid with a bright blob in the left hemisphere, evaluated at (..., 3) world mm."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    head = 1.0 / (1.0 + np.exp(((x / 60) ** 2 + (y / 75) ** 2 + (z / 55) ** 2 - 1.0) * 12))
    bx, by, bz = BLOB_WORLD
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
