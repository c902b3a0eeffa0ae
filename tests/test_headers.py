"""Headers that lie, checked before a library reads them (brain3d/headers.py, through brain3d.io.read_volume).

Each test below is a minimal example that property-based fuzzing (tests/test_io_fuzz.py, bench/fuzz.py) found
crashing, hanging, mis-reading or over-allocating in the readers before these checks existed; kept as regression
tests, each must end in one sentence naming the file."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brain3d.errors import VolumeError
from brain3d.io import read_volume
from tests.hostile import Memory, within


def _refused(path: Path, starts: str) -> str:
    """read_volume(path) must raise a one-line VolumeError naming the file and starting with `starts`; no hang."""
    with pytest.raises(VolumeError) as err:
        within(20, read_volume, path)
    text = str(err.value)
    assert text.startswith(f"{path}: {starts}") and "\n" not in text, text
    return text


def _nifti(tmp_path: Path, name: str = "a.nii", version: int = 1, **fields) -> Path:
    """A valid 4x4x4 NIfTI with header fields overwritten (raw struct values, no validation)."""
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(np.arange(64, dtype=np.int16).reshape(4, 4, 4), np.eye(4))
    raw = bytearray(img.to_bytes())
    sa = img.header.copy().structarr
    for key, value in fields.items():
        if key.startswith("dim"):
            sa["dim"][int(key[3:])] = value
        else:
            sa[key] = value
    raw[: sa.nbytes] = sa.tobytes()
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    return path


# ---- NIfTI ---------------------------------------------------------------------------------------------------------

def test_nifti_data_offset_beyond_any_file(tmp_path):  # was: OverflowError (Python int too large to convert to C long)
    _refused(_nifti(tmp_path, vox_offset=1e30), "is truncated or corrupt")


def test_nifti_with_a_zero_dimension(tmp_path):  # was: OverflowError (memory mapped length must be positive)
    _refused(_nifti(tmp_path, dim2=0), "has no voxels")


def test_nifti_rgb_voxels(tmp_path):  # was: numpy DTypePromotionError (void to float32)
    _refused(_nifti(tmp_path, datatype=128, bitpix=24), "has RGB or other multi-component voxels (NIfTI datatype 128)")


@pytest.mark.parametrize("name", ["big.nii", "big.nii.gz"])
def test_nifti_declaring_far_more_voxels_than_it_holds_allocates_nothing(tmp_path, name):
    """400³ float64 voxels (512 MB) declared by a 1 KB file: nibabel would allocate all of it before reading."""
    path = _nifti(tmp_path, name, dim1=400, dim2=400, dim3=400, datatype=64, bitpix=64)
    with Memory() as mem:
        _refused(path, "is truncated or corrupt (its header declares")
    assert mem.gained_mb is None or mem.gained_mb < 100


def test_nifti2_data_offset_overflow(tmp_path):
    _refused(_nifti(tmp_path, version=2, vox_offset=2**62), "is truncated or corrupt")


# ---- MetaImage -----------------------------------------------------------------------------------------------------

def _mha(tmp_path: Path, fields: str, data: bytes = bytes(range(32))) -> Path:
    path = tmp_path / "a.mha"
    path.write_bytes(f"ObjectType = Image\n{fields}ElementDataFile = LOCAL\n".encode() + data)
    return path


def test_metaimage_negative_ndims(tmp_path):  # was: ITK spins forever (and with more lies, a segmentation fault)
    _refused(_mha(tmp_path, "NDims = -1\nDimSize = 2 4 4\nElementType = MET_UCHAR\n"),
             "has a header field NDims of -1 (expected 1 to 5)")


def test_metaimage_counts_and_types(tmp_path):
    _refused(_mha(tmp_path, "NDims = 4\nDimSize = 2 4 4\nElementType = MET_UCHAR\n"),
             "has a header with NDims = 4 but 3 DimSize values")
    _refused(_mha(tmp_path, "NDims = 3\nDimSize = 2 4 4\nElementType = MET_STRING\n"),
             "has an ElementType this reader does not know ('MET_STRING')")
    _refused(_mha(tmp_path, "NDims = 3\nDimSize = 2 4 4\nElementNumberOfChannels = 0\nElementType = MET_UCHAR\n"),
             "has a header field ElementNumberOfChannels of 0")
    _refused(_mha(tmp_path, "NDims = 3\nDimSize = 2 4 4\nOffset = 0 inf 0\nElementType = MET_UCHAR\n"),
             "has a header field Offset with a non-finite number (inf)")


def test_metaimage_declaring_far_more_than_it_holds(tmp_path):
    fields = "NDims = 3\nDimSize = 400 400 400\nElementType = MET_DOUBLE\n"
    with Memory() as mem:
        _refused(_mha(tmp_path, fields), "is truncated or corrupt (its header declares 512,000,000 bytes of voxels, "
                                         "the file holds 32)")
        _refused(_mha(tmp_path, fields + "CompressedData = True\nCompressedDataSize = 20\n",
                      zlib.compress(bytes(1000))), "is truncated or corrupt (its header declares 512,000,000 bytes")
    assert mem.gained_mb is None or mem.gained_mb < 100


# ---- NRRD ----------------------------------------------------------------------------------------------------------

def _nrrd(tmp_path: Path, fields: str, data: bytes = bytes(range(27))) -> Path:
    path = tmp_path / "a.nrrd"
    path.write_bytes(f"NRRD0004\n{fields}\n".encode() + data)
    return path


def test_nrrd_axes_that_reorienting_would_drop(tmp_path):  # was: nibabel OrientationError
    fields = ("type: uchar\ndimension: 3\nsizes: 3 3 3\nspace: left-posterior-superior\n"
              "space directions: (2,0,0) (0,1,1e+30) (0,0,2)\nspace origin: (0,0,0)\nencoding: raw\n")
    _refused(_nrrd(tmp_path, fields), "has a voxel size of 1e+30 mm in its header")


def test_nrrd_declaring_far_more_than_it_holds(tmp_path):
    raw = "type: double\ndimension: 3\nsizes: 400 400 400\nendian: little\nencoding: {}\n"
    with Memory() as mem:
        _refused(_nrrd(tmp_path, raw.format("raw")), "is truncated or corrupt (its header declares 512,000,000")
        _refused(_nrrd(tmp_path, raw.format("gzip"), gzip.compress(bytes(1000))),
                 "is truncated or corrupt (its header declares 512,000,000 bytes of voxels, the compressed data "
                 "holds 1,000)")
    assert mem.gained_mb is None or mem.gained_mb < 100


def test_nrrd_fields_that_contradict(tmp_path):
    _refused(_nrrd(tmp_path, "type: uchar\ndimension: 3\nsizes: 3 3\nencoding: raw\n"),
             "has a header with dimension 3 but 2 sizes")
    _refused(_nrrd(tmp_path, "type: uchar\ntype: double\ndimension: 3\nsizes: 3 3 3\nencoding: raw\n"),
             "gives the header field 'type' twice")
    _refused(_nrrd(tmp_path, "type: short\ndimension: 3\nsizes: 3 3 3\nencoding: raw\n"),
             "has short voxels but no byte order")


# ---- DICOM series ----------------------------------------------------------------------------------------------

def _series(tmp_path: Path, n: int = 4, positions=None, orientations=None, rows: int = 4, rgb_jpeg: bool = False,
            drop: str | None = None) -> Path:
    """An MR series of n slices 2 mm apart; positions/orientations override per slice."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID

    folder = tmp_path / "series"
    folder.mkdir()
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4")
        ds.file_meta.MediaStorageSOPInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.9.{k + 1}")
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.50" if rgb_jpeg else "1.2.840.10008.1.2.1")
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID = "MR", "X"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.5"
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = rows, 4
        ds.PixelSpacing = [1.0, 1.0]
        ds.ImageOrientationPatient = (orientations or {}).get(k, [1, 0, 0, 0, 1, 0])
        ds.ImagePositionPatient = [0.0, 0.0, (positions or [2.0 * i for i in range(n)])[k]]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = np.full(16, 100 * (k + 1), "<u2").tobytes()
        if rgb_jpeg:
            ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated = 3, "RGB", 64
            ds.PixelData = encapsulate([ds.PixelData])
            ds["PixelData"].VR = "OB"
        if drop:
            delattr(ds, drop)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True, implicit_vr=False, little_endian=True)
        (folder / f"{k:03d}.dcm").write_bytes(buf.getvalue())
    return folder


def test_dicom_series_that_is_read_correctly(tmp_path):
    vol = read_volume(_series(tmp_path))
    assert vol.shape == (4, 4, 4) and vol.spacing[0] == pytest.approx(2.0)


def test_dicom_missing_slice(tmp_path):  # was: read as a volume with 2.67 mm slices (stretched)
    _refused(_series(tmp_path, positions=[0.0, 2.0, 6.0, 8.0]),
             "DICOM series 1.2.826.0.1.3680043.8.498.5: its slices are not evenly spaced (steps from 2 to 4 mm)")


def test_dicom_duplicated_slice(tmp_path):  # was: read with the duplicate as a slice of its own
    _refused(_series(tmp_path, positions=[0.0, 2.0, 2.0, 4.0]),
             "DICOM series 1.2.826.0.1.3680043.8.498.5: 4 slices but only 3 distinct positions")


def test_dicom_slice_with_another_orientation(tmp_path):
    _refused(_series(tmp_path, orientations={2: [0, 1, 0, 1, 0, 0]}),
             "DICOM series 1.2.826.0.1.3680043.8.498.5: slice 002.dcm differs from the first slice in orientation")


def test_dicom_without_orientation(tmp_path):  # was: read as if identity-oriented (its side a guess)
    _refused(_series(tmp_path, drop="ImageOrientationPatient"),
             "DICOM series 1.2.826.0.1.3680043.8.498.5: slice 000.dcm has no ImageOrientationPatient")


def test_dicom_pixel_data_shorter_than_its_size(tmp_path):
    _refused(_series(tmp_path, rows=4000), "DICOM series 1.2.826.0.1.3680043.8.498.5: slice 000.dcm holds 32 pixel "
                                           "bytes, less than its 4000×4 size declares (32,000 bytes)")


def test_dicom_files_gdcm_cannot_sort(tmp_path):  # was: RuntimeError from GetGDCMSeriesIDs (a traceback)
    _refused(_series(tmp_path, n=2, rgb_jpeg=True), "holds DICOM files that cannot be sorted into series")
