"""The slices the 2D baseline feeds are the right ones, whatever the stored orientation."""

from __future__ import annotations

import numpy as np
import pytest

from brain3d.baselines.slices import load_slices, slice_indices, to_images
from brain3d.errors import Brain3DError
from tests.volumes import ras_grid, reoriented, save_nifti


def test_slice_indices_are_equidistant_slab_centres():
    assert slice_indices(64, 64) == list(range(64))
    assert slice_indices(64, 1) == [32]
    assert slice_indices(64, 4) == [8, 24, 40, 56]
    gaps = np.diff(slice_indices(64, 16))
    assert set(gaps.tolist()) == {4}
    with pytest.raises(Brain3DError):
        slice_indices(64, 65)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The same head (bright blob in the patient's LEFT hemisphere, anterior brighter) stored RAS and LPS."""
    folder = tmp_path_factory.mktemp("slices")
    data, affine = ras_grid()
    paths = {}
    for codes in ("RAS", "LPS"):
        d, a = reoriented(data, affine, codes)
        paths[codes] = save_nifti(d, a, folder / f"head_{codes}.nii.gz")
    return paths


def test_lps_and_ras_storage_give_identical_slices_with_the_lesion_on_the_image_right(stored):
    ras = load_slices(stored["RAS"], 16, 48)
    lps = load_slices(stored["LPS"], 16, 48)
    assert ras.shape == (16, 48, 48) and ras.dtype == np.uint8
    np.testing.assert_array_equal(ras, lps)

    # radiological display: the patient's left (the blob) on the image's right, anterior (brighter) at the top
    for images in (ras, lps):
        lesion = images[int(np.argmax(images.reshape(16, -1).max(axis=1)))].astype(float)  # the blob's slice
        row, col = np.unravel_index(np.argmax(lesion), lesion.shape)
        assert col > 48 * 0.6, f"blob at column {col}: not on the image's right"
        assert np.mean(lesion[:, 24:]) > np.mean(lesion[:, :24])
        head = images[8].astype(float)
        assert np.mean(head[:20][head[:20] > 0]) > np.mean(head[-20:][head[-20:] > 0])  # anterior brighter


def test_images_are_grey_rgb_of_the_slice(stored):
    slices = load_slices(stored["RAS"], 2, 32)
    images = to_images(slices)
    assert len(images) == 2 and images[0].mode == "RGB" and images[0].size == (32, 32)
    rgb = np.asarray(images[1])
    assert (rgb[..., 0] == slices[1]).all() and (rgb[..., 2] == slices[1]).all()
