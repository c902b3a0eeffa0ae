"""Read scans into canonical model axes and write model-space maps back as NIfTI.

Formats: NIfTI (.nii, .nii.gz) via nibabel; a DICOM series folder, NRRD and MetaImage (.mha/.mhd) via
SimpleITK. Orientation comes from the header alone (see `brain3d.orientation`); file and folder names are
never consulted. Every failure is a `VolumeError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np

from brain3d import quiet
from brain3d.errors import VolumeError
from brain3d.headers import check_dicom_series, check_metaimage, check_nifti, check_nrrd, check_voxel_sizes
from brain3d.orientation import from_model_axes, model_to_ras, orientation_codes, spacing_of, to_model_axes

# 512³ float32 voxels ≈ 0.5 GiB: far above any brain MRI, below what would exhaust a workstation.
MAX_VOXELS = 512**3
NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


@dataclass
class Volume:
    """A scan in model axes.

    data: float32, (D, H, W) or (C, D, H, W); affine: model index (d, h, w, 1) → world RAS+ mm;
    spacing: mm along (D, H, W); orientation: the axis codes stored in the original header.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: tuple[str, str, str]
    source: str
    sequences: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[-3:])  # type: ignore[return-value]


def read_volume(
    path: str | Path,
    *,
    series_uid: str | None = None,
    volume_index: int | None = None,
    max_voxels: int = MAX_VOXELS,
) -> Volume:
    """Read one 3D scan (NIfTI file, DICOM series folder, NRRD/MHA file) and reorient it to model axes."""
    path = Path(path)
    if not path.exists():
        raise VolumeError("file not found", path)
    if path.is_dir():
        data, affine = _read_dicom_folder(path, series_uid, max_voxels)
    elif path.name.lower().endswith(NIFTI_SUFFIXES):
        data, affine = _read_nifti(path, volume_index, max_voxels)
    elif path.name.lower().endswith(ITK_SUFFIXES):
        data, affine = _read_itk_file(path, volume_index, max_voxels)
    elif path.name.lower().endswith(".dcm"):
        raise VolumeError("is a single DICOM file; pass the folder that holds the whole series", path)
    else:
        raise VolumeError("unsupported file type (expected .nii, .nii.gz, .nrrd, .mha, .mhd or a DICOM folder)", path)
    _validate(data, path)
    codes = orientation_codes(affine)
    model, model_affine = to_model_axes(data.astype(np.float32, copy=False), affine)
    return Volume(model, model_affine, spacing_of(model_affine), codes, str(path))


def read_sequences(
    paths: Sequence[str | Path],
    names: Sequence[str] | None = None,
    **read_kw,
) -> Volume:
    """Read several co-registered sequences as channels (C, D, H, W) on the grid of the first one.

    A sequence stored on a different grid (shape, spacing or orientation) is resampled trilinearly through
    world coordinates onto the first sequence's grid.
    """
    if not paths:
        raise VolumeError("no input volume given")
    vols = [read_volume(p, **read_kw) for p in paths]
    ref = vols[0]
    channels = [ref.data]
    for v in vols[1:]:
        same_grid = v.data.shape == ref.data.shape and np.allclose(v.affine, ref.affine, atol=1e-4)
        channels.append(v.data if same_grid else resample_to(v, ref.affine, ref.shape))
    names = tuple(names) if names is not None else tuple(Path(p).name for p in paths)
    return replace(ref, data=np.stack(channels), sequences=names)  # (C, D, H, W)


def resample_to(vol: Volume, affine: np.ndarray, shape: tuple[int, int, int], order: int = 1) -> np.ndarray:
    """Resample a (D, H, W) volume onto another model-space grid through world coordinates."""
    return resample_array(vol.data, vol.affine, affine, shape, order)


def resample_array(data: np.ndarray, src_affine: np.ndarray, affine: np.ndarray, shape: Sequence[int],
                   order: int = 1) -> np.ndarray:
    """Resample a (D, H, W) array given on the grid `src_affine` onto the grid (`affine`, `shape`) through world
    coordinates; outside the source grid is 0. order 0 (nearest) keeps label maps as labels."""
    from scipy.ndimage import map_coordinates

    shape = tuple(int(n) for n in shape)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    src = np.linalg.inv(src_affine) @ affine  # target index → source index
    coords = grid @ src[:3, :3].T + src[:3, 3]
    out = map_coordinates(np.asarray(data, dtype=np.float32), coords.T, order=order, mode="constant", cval=0.0)
    return out.reshape(shape).astype(np.float32)


def nifti_bytes(data: np.ndarray, affine: np.ndarray, gz: bool = True,
                stored_as: Sequence[str] | None = None) -> bytes:
    """A model-space array (D, H, W) or (C, D, H, W) as the bytes of a NIfTI that viewers place correctly:
    RAS-stored, or with `stored_as` (a scan's `Volume.orientation`, e.g. LPS) in that axis order, which puts a
    map computed on a scan's model-axes grid voxel for voxel on the scan's own stored grid and affine."""
    if hasattr(data, "detach"):  # a torch tensor (e.g. an attribution map on the GPU)
        data = data.detach().cpu().numpy()
    data = np.asarray(data).astype(np.float32, copy=False)
    if stored_as is None:
        stored, stored_affine = model_to_ras(data, affine)
    else:
        stored, stored_affine = from_model_axes(data, affine, tuple(stored_as))
    img = nib.Nifti1Image(stored, stored_affine)
    img.set_qform(stored_affine, code=1)
    img.set_sform(stored_affine, code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if gz else raw


def write_nifti(data: np.ndarray, affine: np.ndarray, path: str | Path,
                stored_as: Sequence[str] | None = None) -> Path:
    """Write a model-space array (D, H, W) or (C, D, H, W) as a NIfTI (gzip-compressed for a .gz name), RAS-stored
    or in the axis order `stored_as` (see `nifti_bytes`)."""
    from brain3d.fsutil import atomic_write_bytes

    path = Path(path)
    return atomic_write_bytes(path, nifti_bytes(data, affine, gz=path.name.endswith(".gz"), stored_as=stored_as))


# ---- format readers: each returns (array with spatial axes first, voxel→world RAS affine) ----


def _read_nifti(path: Path, volume_index: int | None, max_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for bad headers
        raise VolumeError(f"cannot be read as NIfTI ({_short(exc)})", path) from None
    shape = tuple(int(s) for s in img.shape)
    affine = _checked_affine(img.affine, path)
    _guard_size(shape, max_voxels, path)
    check_nifti(img, path)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (EOFError, OSError, ValueError, OverflowError, TypeError, zlib.error) as exc:
        raise VolumeError(f"is truncated or corrupt ({_short(exc)})", path) from None
    return _select_3d(data, volume_index, path), affine


def _read_itk_file(path: Path, volume_index: int | None, max_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    name = path.name.lower()
    if name.endswith((".mha", ".mhd")):
        check_metaimage(path, max_voxels)  # ITK hangs or crashes on some lying MetaImage headers
    elif name.endswith((".nrrd", ".nhdr")):
        check_nrrd(path, max_voxels)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        with quiet.native_stderr_discarded():
            reader.ReadImageInformation()
        size = tuple(reader.GetSize())
        _guard_size(size, max_voxels, path)
        with quiet.native_stderr_discarded():
            img = reader.Execute()
    except RuntimeError as exc:
        raise VolumeError(f"cannot be read ({_itk_reason(exc)})", path) from None
    return _from_sitk(img, volume_index, path)


def dicom_series_files(path: str | Path, series_uid: str | None = None) -> tuple[str, list[str]]:
    """(series UID, its files) of a DICOM folder: the one series there, or `series_uid` among several.

    The reader and the DICOM SR writer both use it, so an SR cites exactly the instances the volume was read from."""
    import SimpleITK as sitk

    path = Path(path)
    reader = sitk.ImageSeriesReader()
    try:
        with quiet.native_stderr_discarded():
            uids = list(reader.GetGDCMSeriesIDs(str(path)))
    except RuntimeError as exc:  # GDCM gives up on a file whose header contradicts itself
        raise VolumeError(f"holds DICOM files that cannot be sorted into series ({_itk_reason(exc)})", path) from None
    if not uids:
        raise VolumeError("is a folder without a readable DICOM series", path)
    named = ", ".join(u or "(one without a SeriesInstanceUID)" for u in uids)
    if series_uid is None:
        if len(uids) > 1:
            raise VolumeError(f"holds {len(uids)} DICOM series; choose one with --series-uid: {named}", path)
        series_uid = uids[0]
    elif series_uid not in uids:
        raise VolumeError(f"has no DICOM series {series_uid} (found: {named})", path)
    try:
        with quiet.native_stderr_discarded():
            return series_uid, list(reader.GetGDCMSeriesFileNames(str(path), series_uid))
    except RuntimeError as exc:
        raise VolumeError(f"holds DICOM files that cannot be sorted into series ({_itk_reason(exc)})", path) from None


def _read_dicom_folder(path: Path, series_uid: str | None, max_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    series_uid, files = dicom_series_files(path, series_uid)
    if len(files) < 2:
        raise VolumeError(f"DICOM series {series_uid or '(without a SeriesInstanceUID)'} has a single slice, not a 3D "
                          "volume", path)
    check_dicom_series(files, path, series_uid, max_voxels)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with quiet.native_stderr_discarded():
            img = reader.Execute()
    except RuntimeError as exc:
        raise VolumeError(f"DICOM series {series_uid} cannot be read ({_itk_reason(exc)})", path) from None
    _guard_size(tuple(img.GetSize()), max_voxels, path)
    return _from_sitk(img, None, path)


def _from_sitk(img, volume_index: int | None, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK image → (array indexed (i, j, k[, t]), RAS affine). ITK's physical space is LPS."""
    import SimpleITK as sitk

    dim = img.GetDimension()
    if dim < 3:
        raise VolumeError(f"is a {dim}D image, not a 3D volume", path)
    arr = sitk.GetArrayFromImage(img)  # (k, j, i) or (t, k, j, i) or (k, j, i, comp)
    if img.GetNumberOfComponentsPerPixel() > 1:
        raise VolumeError("has multi-component (e.g. RGB) voxels, not a scalar MRI volume", path)
    arr = np.transpose(arr, tuple(range(arr.ndim))[::-1])  # (i, j, k[, t])
    n = min(dim, 3)
    direction = np.array(img.GetDirection()).reshape(dim, dim)[:n, :n]
    spacing = np.array(img.GetSpacing())[:n]
    origin = np.array(img.GetOrigin())[:n]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return _select_3d(arr.astype(np.float32), volume_index, path), _checked_affine(affine, path)


def _select_3d(data: np.ndarray, volume_index: int | None, path: Path) -> np.ndarray:
    """Reduce to exactly three spatial axes: drop trailing singleton axes, pick one volume of a 4D series."""
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.size == 0:
        raise VolumeError(f"has no voxels (shape {tuple(data.shape)})", path)
    if data.ndim < 3 or min(data.shape[:3]) < 2:
        raise VolumeError(f"is a 2D image (shape {tuple(data.shape)}), not a 3D volume", path)
    if data.ndim == 4:
        if volume_index is None:
            raise VolumeError(
                f"is 4D with {data.shape[3]} volumes; choose one with --volume-index (0..{data.shape[3] - 1})", path
            )
        if not 0 <= volume_index < data.shape[3]:
            raise VolumeError(f"has no volume {volume_index} (0..{data.shape[3] - 1})", path)
        data = data[..., volume_index]
    elif data.ndim > 4:
        raise VolumeError(f"has {data.ndim} dimensions (shape {tuple(data.shape)}); expected a 3D volume", path)
    elif volume_index not in (None, 0):
        raise VolumeError(f"is 3D; --volume-index {volume_index} does not exist", path)
    return data


def _validate(data: np.ndarray, path: Path) -> None:
    lo, hi = float(data.min()), float(data.max())  # NaN and ±Inf propagate here: one pass finds both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad = int(data.size - np.isfinite(data).sum())
        if bad:
            raise VolumeError(f"contains {bad} NaN or infinite voxels", path)
    if hi == lo:
        raise VolumeError(f"is constant (every voxel is {lo:g}): an empty scan", path)


def _guard_size(shape: tuple[int, ...], max_voxels: int, path: Path) -> None:
    n = int(np.prod([int(s) for s in shape], dtype=np.float64))
    if n > max_voxels:
        raise VolumeError(
            f"is too large ({'×'.join(str(s) for s in shape)} = {n:,} voxels, limit {max_voxels:,}); "
            "crop or downsample it first",
            path,
        )


def _checked_affine(affine: np.ndarray, path: Path) -> np.ndarray:
    """A usable voxel → world affine: finite, invertible, voxel sides of a plausible size, and its three axes pointing
    in three different directions (else reorienting would drop one)."""
    affine = np.asarray(affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise VolumeError("has an invalid (singular or non-finite) orientation matrix in its header", path)
    check_voxel_sizes(np.sqrt((affine[:3, :3] ** 2).sum(axis=0)), path)
    if np.isnan(nib.orientations.io_orientation(affine)).any():
        raise VolumeError("has an orientation matrix whose axes do not point in three different directions", path)
    return affine


def _itk_reason(exc: BaseException) -> str:
    """What an ITK exception says is wrong, without ITK's source locations and object addresses: teem's innermost
    complaint for NRRD, else the first sentence of the ITK error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    teem = [ln for ln in lines if re.match(r"^\[\w+\] ", ln)]
    if teem:
        return re.sub(r"^\[\w+\] \w+: ", "", teem[-1])[:200]
    for line in lines:
        found = re.search(r"ERROR: \w+\(0x[0-9a-fA-F]+\): (.*)$", line, flags=re.IGNORECASE)
        if found and found.group(1).strip():
            return found.group(1).split(". ")[0].strip()[:200]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
