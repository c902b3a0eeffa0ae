"""The lobe map and the lesion → location rule, on landmarks and masks placed by hand in MNI mm."""

from __future__ import annotations

import numpy as np
import pytest

from brain3d.anatomy.atlas import load_atlas
from brain3d.anatomy.lobes import lobe_labels, locations_of


@pytest.fixture(scope="module")
def atlas():
    return load_atlas(2)


def test_lobe_map_classifies_landmarks() -> None:
    points = np.array([[-40, 30, 30], [40, -45, 45], [-50, -20, -15], [-20, -90, 10], [10, -70, -30]], np.float32)
    assert lobe_labels(points).tolist() == [1, 2, 3, 4, 0]  # frontal, parietal, temporal, occipital, cerebellum


def test_locations_of_a_mask_follow_the_lobe_map(atlas) -> None:
    mm = atlas.mm_grid()
    x, y, z = mm[..., 0], mm[..., 1], mm[..., 2]
    mask = (x > 30) & (x < 45) & (y > -30) & (y < -6) & (z > 30) & (z < 50)  # straddles y = -18
    assert locations_of(mask, mm, atlas) == ["frontal", "parietal"]
    assert locations_of(np.zeros_like(mask), mm, atlas) == []
