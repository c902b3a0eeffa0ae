import numpy as np
import pytest
import torch

from brain3d.io import Volume
from brain3d.errors import VolumeError
from brain3d.preprocess import (PreprocessConfig, preprocess_volume, resize, resized_affine, scale_intensities,
                                 scale_median, scale_percentiles)


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


def test_resize_matches_trilinear_sampling_at_half_voxel_centres_and_is_identity_on_same_size():
    from scipy.ndimage import map_coordinates

    x = torch.rand(2, 8, 10, 12, generator=torch.Generator().manual_seed(0))
    out = (16, 7, 24)  # up along D and W, down along H
    y = resize(x, out)
    assert y.shape == (2, *out)
    # align_corners=False: output voxel o samples the input at (o + 1/2) * n_in / n_out - 1/2, clamped to the edges
    coords = [np.clip((np.arange(o) + 0.5) * n / o - 0.5, 0, n - 1) for n, o in zip(x.shape[1:], out)]
    grid = np.stack(np.meshgrid(*coords, indexing="ij")).reshape(3, -1)
    for c in range(2):
        expected = map_coordinates(x[c].numpy().astype(np.float64), grid, order=1).reshape(out)
        np.testing.assert_allclose(y[c].numpy(), expected, atol=1e-5)
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


def test_median_scaling_maps_the_median_to_one_half_and_keeps_relative_brightness():
    x = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 80.0, 200.0], np.float32).reshape(7, 1, 1)
    y = scale_median(x)  # median 30
    np.testing.assert_allclose(y.ravel(), [0.0, 1 / 6, 1 / 3, 0.5, 2 / 3, 1.0, 1.0], rtol=1e-6)
    assert y.dtype == np.float32
    # a gain changes nothing: the anchor is multiplicative
    np.testing.assert_allclose(scale_median(7.5 * x), y, rtol=1e-6)


def test_median_scaling_of_the_brain_ignores_the_background_when_asked():
    x = np.zeros((10, 10, 10), np.float32)
    x[2:8, 2:8, 2:8] = 40.0
    x[4, 4, 4] = 60.0
    assert not scale_median(x).any()  # the median of the whole volume is background 0: nothing to anchor on
    brain = scale_median(x, nonzero=True)
    assert brain[3, 3, 3] == pytest.approx(0.5) and brain[4, 4, 4] == pytest.approx(0.75) and brain[0, 0, 0] == 0.0


def test_median_scaling_keeps_a_lesion_brighter_than_the_brain_where_percentiles_saturate_normal_tissue():
    rng = np.random.default_rng(0)
    healthy = rng.normal(100.0, 5.0, (12, 12, 12)).astype(np.float32)
    lesion = healthy.copy()
    lesion[2:5, 2:5, 2:5] = 250.0
    for vol in (healthy, lesion):
        assert scale_percentiles(vol).max() == 1.0  # percentiles: the brightest 1% is 1.0 in both
    assert scale_median(healthy).max() < 0.7 and scale_median(lesion)[3, 3, 3] == 1.0  # median: only the lesion is


def test_scale_intensities_follows_the_config_and_unknown_scalings_are_refused():
    x = np.linspace(1.0, 50.0, 1000, dtype=np.float32).reshape(10, 10, 10)
    np.testing.assert_array_equal(scale_intensities(x, PreprocessConfig(scaling="median")), scale_median(x))
    np.testing.assert_array_equal(scale_intensities(x, PreprocessConfig(low=5.0, high=95.0)),
                                  scale_percentiles(x, 5.0, 95.0))
    with pytest.raises(VolumeError, match="intensity scaling 'zscore' is not one of percentile, median"):
        PreprocessConfig(scaling="zscore")
    cfg = PreprocessConfig(size=(4, 8, 8), low=2.0, high=98.0, nonzero=True, scaling="median")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg


def test_preprocess_volume_applies_the_median_scaling_per_channel():
    rng = np.random.default_rng(1)
    data = rng.uniform(10, 30, (2, 8, 16, 16)).astype(np.float32)
    data[1] = 4.0 * data[0]  # the same image under another gain: the median anchor removes it
    vol = Volume(data, np.eye(4), (1, 1, 1), ("R", "A", "S"), "x")
    mv = preprocess_volume(vol, PreprocessConfig(size=(8, 16, 16), scaling="median"))
    np.testing.assert_allclose(mv.tensor[0].numpy(), scale_median(data[0]), rtol=1e-6)
    np.testing.assert_allclose(mv.tensor[1].numpy(), mv.tensor[0].numpy(), rtol=1e-5)
    assert float(np.median(mv.tensor[0].numpy())) == pytest.approx(0.5, abs=1e-6)
