import numpy as np
import pytest
import torch

from brain3d.io import Volume
from brain3d.preprocess import PreprocessConfig, preprocess_volume, resize, resized_affine, scale_percentiles


def test_percentile_scaling_maps_p1_p99_to_unit_interval():
    x = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    y = scale_percentiles(x, 1, 99)
    lo, hi = np.percentile(x, [1, 99])
    assert y.min() == 0.0 and y.max() == 1.0
    np.testing.assert_allclose(y[5, 0, 0], (500 - lo) / (hi - lo), rtol=1e-6)


def test_nonzero_percentiles_ignore_background():
    x = np.zeros((10, 10, 10), np.float32)
    x[2:8, 2:8, 2:8] = np.linspace(10, 20, 216).reshape(6, 6, 6)
    whole = scale_percentiles(x, 1, 99, nonzero=False)
    brain = scale_percentiles(x, 1, 99, nonzero=True)
    assert whole[2:8, 2:8, 2:8].min() > 0.3  # p1 of the whole volume is background 0
    assert brain[2:8, 2:8, 2:8].min() == 0.0  # p1 of the brain is the darkest brain voxel


def test_flat_channel_becomes_zeros():
    assert not scale_percentiles(np.full((4, 4, 4), 3.0, np.float32)).any()


def test_resize_matches_torch_trilinear_and_is_identity_on_same_size():
    x = torch.rand(2, 8, 10, 12)
    y = resize(x, (16, 20, 24))
    assert y.shape == (2, 16, 20, 24)
    assert resize(x, (8, 10, 12)) is x


def test_resized_affine_maps_model_voxels_to_the_same_world_points():
    # a ramp equal to the source W index survives linear resizing, so the resized affine must predict it
    shape, out = (20, 24, 28), (10, 16, 14)
    affine = np.diag([2.0, 1.5, 1.0, 1.0])
    affine[:3, 3] = [-20, -18, -14]
    ramp = np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape).copy()  # (D, H, W) = w
    y = resize(torch.from_numpy(ramp)[None], out)[0].numpy()
    a2 = resized_affine(affine, shape, out)
    inv = np.linalg.inv(affine)
    for idx in [(0, 0, 0), (5, 7, 6), (9, 15, 13), (3, 2, 10)]:
        world = a2 @ np.array([*idx, 1.0])
        src_w = (inv @ world)[2]
        assert y[idx] == pytest.approx(np.clip(src_w, 0, shape[2] - 1), abs=1e-4)


def test_preprocess_volume_shapes_and_range():
    vol = Volume(np.random.rand(2, 20, 24, 28).astype(np.float32) * 500, np.eye(4), (1, 1, 1), ("R", "A", "S"), "x")
    mv = preprocess_volume(vol, PreprocessConfig(size=(8, 16, 16)))
    assert mv.tensor.shape == (2, 8, 16, 16) and mv.tensor.dtype == torch.float32
    assert 0.0 <= float(mv.tensor.min()) and float(mv.tensor.max()) <= 1.0
