import numpy as np

from brain3d.data.truth import Plane
from brain3d.explain.maps import attribution_map, labels_on_grid, midline, supervoxel_table, top_supporting


def _labels():
    """(2, 4, 4): supervoxel 1 = patient-left half (low W), 2 = right half, a background column."""
    labels = np.ones((2, 4, 4), np.int32)
    labels[..., 2:] = 2
    labels[:, 0, 0] = 0
    return labels


# model index (d, h, w) -> world RAS: x = w·2 − 3 (left is negative), y = h·2, z = d·2 + 40 (upper brain)
AFFINE = np.array([[0, 0, 2.0, -3.0], [0, 2.0, 0, 0.0], [2.0, 0, 0, 40.0], [0, 0, 0, 1.0]])
UPRIGHT = Plane(normal=np.array([1.0, 0.0, 0.0]), offset=0.0, symmetry=1.0)


def test_map_and_table():
    labels = _labels()
    amap = attribution_map(labels, np.array([0.5, -0.25]))
    assert amap.dtype == np.float32 and amap[0, 0, 0] == 0 and amap[1, 3, 1] == 0.5 and amap[1, 3, 3] == -0.25
    table = supervoxel_table(labels, np.array([0.5, -0.25]), AFFINE, UPRIGHT, lobes_from_mni=True)
    assert [r["side"] for r in table] == ["left", "right"]
    assert table[0]["voxels"] == 14 and table[0]["volume_ml"] == round(14 * 8 / 1000, 3)
    assert table[1]["centroid_mm"] == [2.0, 3.0, 41.0]  # mean w 2.5 → x = 2.0
    assert table[0]["lobe"] == "frontal"  # y ≥ −18 mm in the MNI lobe map
    assert supervoxel_table(labels, np.array([0.5, -0.25]), AFFINE, UPRIGHT)[0]["lobe"] is None
    assert [r["label"] for r in top_supporting(table, 5)] == [1]  # only positive weights support


def test_labels_move_to_a_finer_grid_through_world_coordinates():
    labels = _labels()
    fine = AFFINE.copy()
    fine[:3, :3] /= 2.0  # half the voxel size, same origin
    moved = labels_on_grid(labels, AFFINE, fine, (4, 8, 8))
    assert moved.dtype == np.int32 and set(np.unique(moved)) == {0, 1, 2}  # labels, never blends
    assert np.array_equal(moved[::2, ::2, ::2], labels)  # fine voxels at coarse centres keep their label


def test_midline_of_a_mirror_symmetric_brain_is_its_centre():
    shape = (12, 20, 24)
    d, h, w = np.indices(shape)
    brain = ((d - 5.5) / 5) ** 2 + ((h - 9.5) / 9) ** 2 + ((w - 11.5) / 10) ** 2 < 1
    volume = np.where(brain, 0.5 + 0.3 * np.cos(h / 2.0) + 0.2 * (abs(w - 11.5) < 3), 0.0)[None]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])[[2, 1, 0, 3]]  # index (d, h, w) -> (x = 2w, y = 2h, z = 2d)
    plane = midline(volume.astype(np.float32), brain, affine, "s.nii")
    assert abs(plane.offset - 23.0) < 1.5 and abs(plane.normal[0]) > 0.98
