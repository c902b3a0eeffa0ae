import numpy as np
import pytest

from brain3d.errors import ExplainError
from brain3d.explain.supervoxels import brain_mask, centroids, relabel, slic_supervoxels


def _head(shape=(12, 24, 24)) -> np.ndarray:
    """(1, D, H, W): a bright ellipsoid 'brain' on a zero background, a dark 'ventricle' inside, a stray speck."""
    d, h, w = np.indices(shape)
    c = (np.array(shape) - 1) / 2
    inside = ((d - c[0]) / 5) ** 2 + ((h - c[1]) / 10) ** 2 + ((w - c[2]) / 10) ** 2 < 1
    x = np.where(inside, 0.6 + 0.3 * (w > c[2]), 0.0)
    x[(abs(d - c[0]) < 2) & (abs(h - c[1]) < 2) & (abs(w - c[2]) < 2)] = 0.0  # ventricle: dark but brain
    x[0, 0, 0] = 1.0  # a speck outside the head
    return x[None].astype(np.float32), inside


def test_brain_mask_fills_holes_and_drops_specks():
    x, inside = _head()
    mask = brain_mask(x)
    assert np.array_equal(mask, inside)


def test_supervoxels_cover_the_brain_only_with_consecutive_labels():
    x, inside = _head()
    labels = slic_supervoxels(x, brain_mask(x), 8, spacing=(2.0, 1.0, 1.0))
    assert labels.dtype == np.int32 and labels.shape == inside.shape
    assert (labels[~inside] == 0).all() and (labels[inside] > 0).all()  # background is never a feature
    n = int(labels.max())
    assert set(np.unique(labels)) == set(range(n + 1)) and 4 <= n <= 16
    # intensity-aware: no supervoxel straddles the bright/dim hemisphere boundary by much
    right = np.indices(inside.shape)[2] > (inside.shape[2] - 1) / 2
    for s in range(1, n + 1):
        share = right[labels == s].mean()
        assert share < 0.2 or share > 0.8


def test_too_few_brain_voxels_is_a_clear_error():
    x = np.zeros((1, 6, 6, 6), np.float32)
    x[0, 2:4, 2:4, 2:3] = 1.0
    with pytest.raises(ExplainError, match=r"scan\.nii: has 4 brain voxels .* fewer than the 20 supervoxels"):
        slic_supervoxels(x, brain_mask(x), 20, (1, 1, 1), source="scan.nii")


def test_relabel_and_centroids():
    labels = np.array([[[0, 7, 7], [3, 3, 0]]])
    out = relabel(labels)
    assert out.tolist() == [[[0, 2, 2], [1, 1, 0]]]
    np.testing.assert_allclose(centroids(out, 2), [[0.0, 1.0, 0.5], [0.0, 0.0, 1.5]])


def test_several_sequences_segment_together():
    x, inside = _head()
    two = np.concatenate([x, 1.0 - x * (np.indices(inside.shape)[1] > 12)], axis=0)  # (2, D, H, W)
    labels = slic_supervoxels(two, brain_mask(x), 8, spacing=(2.0, 1.0, 1.0))
    assert (labels[inside] > 0).all() and (labels[~inside] == 0).all()
