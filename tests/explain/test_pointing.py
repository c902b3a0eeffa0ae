import numpy as np
import pytest

from brain3d.explain.pointing import format_summary, lesion_on_model_grid, pointing_scores, summarize


def test_scores_of_one_scan():
    labels = np.zeros((1, 2, 6), np.int32)
    labels[0, :, 0:2], labels[0, :, 2:4], labels[0, :, 4:6] = 1, 2, 3  # supervoxel 1 leftmost
    lesion = np.zeros_like(labels, bool)
    lesion[0, 0, 0:3] = True  # mostly in supervoxel 1, touches 2
    weights = np.array([2.0, -1.0, 1.0])
    s = pointing_scores(labels, weights, ["left", "left", "right"], lesion, "left")
    # positive attribution: 2 per voxel of sv 1 (4 voxels), 1 per voxel of sv 3 (4 voxels) = 12; inside: 2 + 2 = 4
    assert s["energy_in_lesion"] == pytest.approx(4 / 12) and s["energy_in_lesion_chance"] == pytest.approx(3 / 12)
    assert s["side_hit"] == 1.0 and s["side_hit_chance"] == 0.5
    assert s["top_in_lesion"] == 1.0 and s["top_in_lesion_chance"] == pytest.approx(2 / 3)
    miss = pointing_scores(labels, np.array([-1.0, 0.5, 3.0]), ["left", "left", "right"], lesion, "left")
    assert miss["side_hit"] == 0.0 and miss["top_in_lesion"] == 0.0 and miss["energy_in_lesion"] == pytest.approx(0.5 / 14)
    bilateral = pointing_scores(labels, weights, ["left", "left", "right"], lesion, "bilateral")
    assert bilateral["side_hit"] is None and bilateral["top_in_lesion"] == 1.0
    nothing = pointing_scores(labels, -np.ones(3), ["left"] * 3, lesion, "left")
    assert all(nothing[k] is None for k in ("energy_in_lesion", "side_hit", "top_in_lesion"))


def test_summary_has_cis_and_chance():
    rows = [{"energy_in_lesion": e, "energy_in_lesion_chance": 0.1, "side_hit": h, "side_hit_chance": 0.5,
             "top_in_lesion": None, "top_in_lesion_chance": None}
            for e, h in [(0.2, 1.0), (0.4, 0.0), (0.3, 1.0), (0.1, 1.0)]]
    s = summarize(rows, n_boot=200)
    assert s["energy_in_lesion"]["mean"] == pytest.approx(0.25) and s["energy_in_lesion"]["n"] == 4
    assert s["energy_in_lesion"]["lo"] <= 0.25 <= s["energy_in_lesion"]["hi"]
    assert s["side_hit"]["mean"] == 0.75 and s["side_hit"]["chance"] == 0.5
    assert s["top_in_lesion"]["n"] == 0
    assert s["energy_in_lesion"]["over_chance"]["mean"] == pytest.approx(0.15)
    assert s["energy_in_lesion"]["over_chance"]["lo"] > 0  # every scan above its chance level
    assert s["side_hit"]["over_chance"]["lo"] < 0 < s["side_hit"]["over_chance"]["hi"]  # 3 of 4 hits: undecided
    text = format_summary(s, "side")
    assert "top supervoxel on the lesion's side: 0.750 [95% CI" in text and "chance 0.500" in text
    assert "positive attribution inside the lesion" in text and "+0.150" in text and ": above chance)" in text
    assert "not distinguishable from chance" in text
    assert "touches the lesion: n/a" in text


def test_lesion_mask_reaches_the_model_grid_through_world_mm(tmp_path):
    from brain3d.io import write_nifti

    mask = np.zeros((8, 8, 8), np.float32)
    mask[2:4, 2:4, 5:7] = 2.0  # a BraTS label
    affine = np.diag([1.0, 1.0, 1.0, 1.0])[[2, 1, 0, 3]]  # model (d, h, w) -> world (w, h, d)
    path = write_nifti(mask, affine, tmp_path / "seg.nii.gz", stored_as=("L", "P", "S"))
    coarse = affine.copy()
    coarse[:3, :3] *= 2.0
    coarse[:3, 3] = 0.5  # voxel centres of a 2x coarser grid over the same field of view
    lesion = lesion_on_model_grid(path, coarse, (4, 4, 4))
    assert lesion.sum() == 1 and lesion[1, 1, 2]
