"""The orientation helper pinned to the patient's axes by an oracle of its own: volumes built from a physical image
(`tests.volumes.world_image`, a head with a blob in the LEFT hemisphere) at known world coordinates, so the right
answer is computed here with plain numpy, never with the helper under test."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from brain3d.eval.diagnostics import mirrored_side
from brain3d.orientation import (flip_left_right, from_model_axes, index_to_world, model_to_ras, spacing_of, to_model_axes,
                                 world_to_index)
from tests.volumes import BLOB_WORLD, MODEL_SPACING, model_axes_head, oblique_grid, reoriented, voxel_world, world_image

def test_flip_left_right_mirrors_the_patients_x_and_nothing_else():
    x, world = model_axes_head()
    mirror = world * np.array([-1.0, 1.0, 1.0])  # the patient's left-right mirror: world x -> -x
    expected = world_image(mirror)
    np.testing.assert_allclose(flip_left_right(x), expected, rtol=1e-6)
    assert not np.allclose(flip_left_right(x), x)  # the head is not symmetric: the blob moved
    # a torch tensor, with channel and batch axes in front, mirrors the same way
    t = torch.from_numpy(np.stack([x, 2 * x]))[None]  # (B=1, C=2, D, H, W)
    flipped = flip_left_right(t)
    assert isinstance(flipped, torch.Tensor)
    np.testing.assert_allclose(flipped[0, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(flipped[0, 1].numpy(), 2 * expected, rtol=1e-6)
    np.testing.assert_array_equal(flip_left_right(flip_left_right(x)), x)  # an involution


def test_flipped_blob_lands_at_the_mirrored_world_position():
    x, world = model_axes_head()
    for volume, blob_x in ((x, BLOB_WORLD[0]), (flip_left_right(x), -BLOB_WORLD[0])):
        core = volume >= 0.9 * volume.max()
        centre = world[core].mean(axis=0)
        assert abs(centre[0] - blob_x) < MODEL_SPACING and abs(centre[1] - BLOB_WORLD[1]) < MODEL_SPACING
        assert abs(centre[2] - BLOB_WORLD[2]) < MODEL_SPACING


@pytest.mark.parametrize("side, mirror", [("left", "right"), ("right", "left"), ("bilateral", "bilateral"),
                                          (None, None)])
def test_mirrored_side(side, mirror):
    assert mirrored_side(side) == mirror


@pytest.mark.parametrize("codes", ["RAS", "LIP", "PRI", "SLA"])
def test_oblique_grid_reads_to_model_axes_that_keep_every_voxels_world_position(codes):
    data, affine = reoriented(*oblique_grid(), codes)  # rotated 35 and 40 degrees in two planes, then stored `codes`
    model, model_affine = to_model_axes(data, affine)
    # the pair still describes the same physical head: each voxel's value is the image at its world position
    np.testing.assert_allclose(model, world_image(voxel_world(model_affine, model.shape)), rtol=1e-4, atol=1e-3)
    # and the axes are the convention's: D mostly superior, H mostly anterior, W mostly the patient's right
    cols = model_affine[:3, :3] / np.linalg.norm(model_affine[:3, :3], axis=0)
    assert [int(np.argmax(np.abs(cols[:, k]))) for k in range(3)] == [2, 1, 0]
    assert cols[2, 0] > 0.5 and cols[1, 1] > 0.5 and cols[0, 2] > 0.5
    # the blob (world x < 0) lies in the low half of W
    w = np.argwhere(model >= 0.9 * model.max())[:, 2].mean()
    assert w < model.shape[2] / 2
    # back onto the stored grid, voxel for voxel, with the file's own affine
    stored, stored_affine = from_model_axes(model, model_affine, tuple(nib.aff2axcodes(affine)))
    np.testing.assert_array_equal(stored, data)
    np.testing.assert_allclose(stored_affine, affine, atol=1e-9)


def test_channels_follow_the_same_reorientation():
    data, affine = reoriented(*oblique_grid(shape=(20, 22, 18), spacing=(8.0, 8.0, 9.0)), "PRI")
    stacked = np.stack([data, -data], axis=-1)  # (X, Y, Z, C)
    model, model_affine = to_model_axes(stacked, affine)
    single, single_affine = to_model_axes(data, affine)
    assert model.shape == (2, *single.shape)
    np.testing.assert_array_equal(model[0], single)
    np.testing.assert_array_equal(model[1], -single)
    np.testing.assert_allclose(model_affine, single_affine)
    ras, ras_affine = model_to_ras(single, single_affine)
    assert "".join(nib.aff2axcodes(ras_affine)) == "RAS"
    np.testing.assert_allclose(ras, world_image(voxel_world(ras_affine, ras.shape)), rtol=1e-4, atol=1e-3)


def test_spacing_and_world_index_maps_of_an_oblique_grid():
    _, affine = oblique_grid(shape=(6, 7, 5), spacing=(3.0, 2.0, 3.5))
    assert spacing_of(affine) == pytest.approx((3.0, 2.0, 3.5))  # column norms, not row norms
    idx = np.array([[0, 0, 0], [5, 6, 4], [2.5, 1.0, 3.0]])
    world = np.stack([affine[:3, :3] @ i + affine[:3, 3] for i in idx])  # the oracle, one point at a time
    np.testing.assert_allclose(index_to_world(affine, idx), world, atol=1e-9)
    np.testing.assert_allclose(world_to_index(affine, world), idx, atol=1e-9)
    np.testing.assert_allclose(world_to_index(affine, index_to_world(affine, idx[None]))[0], idx, atol=1e-9)


def test_affines_come_back_float64_whatever_the_header_stored():
    data, affine = reoriented(*oblique_grid(shape=(8, 9, 7), spacing=(8.0, 8.0, 9.0)), "PRI")
    model, model_affine = to_model_axes(data, affine.astype(np.float32))
    assert model_affine.dtype == np.float64
    assert model_to_ras(model, model_affine.astype(np.float32))[1].dtype == np.float64


def test_model_to_ras_writes_channels_last_and_refuses_other_shapes():
    x, _ = model_axes_head()
    both = np.stack([x, 3 * x])  # (C, D, H, W)
    ras, _ = model_to_ras(both, np.eye(4))
    single, _ = model_to_ras(x, np.eye(4))
    assert ras.shape == (*single.shape, 2)  # (X, Y, Z, C)
    np.testing.assert_array_equal(ras[..., 0], single)
    np.testing.assert_array_equal(ras[..., 1], 3 * single)
    with pytest.raises(ValueError, match=r"expected a \(D, H, W\) or \(C, D, H, W\) array, got shape \(4, 5\)"):
        model_to_ras(np.zeros((4, 5)), np.eye(4))
