"""Storage grids carry exact affines in every orientation, and files are byte-stable."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brain3d.synth.storage import ORIENTATIONS, storage_grid, world_coordinates, write_nifti_gz

FOV = (-50.0, -60.0, -40.0, 50.0, 40.0, 60.0)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_grid_has_the_requested_axis_codes_and_covers_the_box(orientation: str) -> None:
    affine, shape = storage_grid(orientation, (4.0, 5.0, 10.0), FOV)
    assert "".join(nib.aff2axcodes(affine)) == orientation
    world = world_coordinates(affine, shape)
    np.testing.assert_allclose(world.min(axis=0), FOV[:3], atol=1e-4)
    assert np.all(world.max(axis=0) >= np.asarray(FOV[3:]) - 10.0)
    # world_coordinates agrees with the affine voxel by voxel
    idx = np.array([[0, 0, 0], [shape[0] - 1, 1, 2], [3, shape[1] - 1, shape[2] - 1]])
    flat = np.ravel_multi_index(idx.T, shape)
    np.testing.assert_allclose(world[flat], idx @ affine[:3, :3].T + affine[:3, 3], atol=1e-4)


def test_grid_rejects_codes_that_repeat_an_axis() -> None:
    with pytest.raises(ValueError):
        storage_grid("LRS", (1.0, 1.0, 1.0), FOV)


def test_written_files_are_byte_identical_and_read_back_exactly(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine, _ = storage_grid("PSR", (2.0, 2.0, 3.0), FOV)
    a = write_nifti_gz(data, affine, tmp_path / "a.nii.gz")
    b = write_nifti_gz(data, affine, tmp_path / "b.nii.gz")
    raw = a.read_bytes()
    assert raw == b.read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # gzip mtime field
    img = nib.load(a)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine)
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    assert gzip.decompress(raw)[:4] == (348).to_bytes(4, "little")  # a plain NIfTI-1 header inside
