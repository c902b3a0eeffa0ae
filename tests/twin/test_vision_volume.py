"""The tiny tower's 3D warm-up: token targets from label maps on the encoder's grid, a short run in place that
trains the blocks only (Brain3D's own inflation of the saved tower reproduces the warm-up's encoder)."""

import json
import shutil

import numpy as np
import pytest
import torch

from brain3d.twin.vision_volume import VolumeWarmup, held_out_volume_measures, pretrain_vision_volumes, token_targets


def test_token_targets_follow_the_label_map_on_the_token_grid():
    labels = np.zeros((8, 16, 16), dtype=np.uint8)  # (D, H, W) in model axes; W index 0 = patient's far left
    labels[0:2, 0:8, 0:8] = 2  # edema filling token (d=0, h=0, w=0)
    labels[2:4, 8:16, 8:12] = 1  # necrosis filling half of token (d=1, h=1, w=1)
    t = token_targets(labels, (8, 16, 16), patch=8, kernel_depth=2, depth_stride=2)  # grid (4, 2, 2)
    assert t.shape == (16, 3)
    grid = t.reshape(4, 2, 2, 3)
    torch.testing.assert_close(grid[0, 0, 0], torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(grid[1, 1, 1], torch.tensor([0.5, 0.5, 0.0]))
    assert float(t.sum()) == float(grid[0, 0, 0].sum() + grid[1, 1, 1].sum())


def test_short_run_trains_the_blocks_only_and_records_its_summary(tiny_models, tmp_path):
    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    vision = tmp_path / "vision"
    shutil.copytree(tiny_models["vision"], vision)
    cfg = VolumeWarmup(subjects=4, steps=2, batch_size=2, voxel_mm=8.0, image_size=(16, 32, 32))
    summary = pretrain_vision_volumes(vision, cfg)
    assert summary["steps"] == 2 and summary["held_out_subjects"] == 8
    measures = {"held_out_token_recall", "held_out_token_fpr", "held_out_side_accuracy", "held_out_one_sided"}
    assert measures <= set(summary) and summary["held_out_one_sided"] <= summary["held_out_subjects"]
    assert json.loads((vision / "brain3d_pretraining.json").read_text())["config"]["voxel_mm"] == 8.0
    before = Brain3D.build(tiny_config(tiny_models))
    after = Brain3D.build(tiny_config({"vision": vision, "language": tiny_models["language"]}))
    torch.testing.assert_close(after.encoder.stem.weight, before.encoder.stem.weight)  # patch embedding kept
    torch.testing.assert_close(after.encoder.spatial_pos, before.encoder.spatial_pos)  # position table kept
    changed = [n for (n, a), (_, b) in zip(before.encoder.vit.encoder.named_parameters(),
                                           after.encoder.vit.encoder.named_parameters()) if not torch.equal(a, b)]
    assert changed  # the blocks learned


def test_held_out_measures_count_tokens_and_read_the_side_from_the_low_w_half():
    """A planted encoder and head: the 'features' are the hits themselves on a (1, 1, 4) token grid, W index 0 being
    the patient's far left. Worked by hand: recall 2/3, false-positive rate 3/9, side accuracy 2/3."""
    class PlantedEncoder(torch.nn.Identity):
        grid = (1, 1, 4)

    enc, head = PlantedEncoder(), torch.nn.Identity()
    hits = torch.tensor([[1.0, 1, -1, -1],    # lesion at w=0 (left): found, plus one false hit beside it
                         [-1, -1, -1, 1],     # lesion at w=3 (right): found, more hits on the right
                         [-1, -1, 1, 1]])[..., None]  # lesion at w=1 (left): missed, hits on the right: wrong side
    whole = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    targets = torch.stack([whole, torch.zeros_like(whole), torch.zeros_like(whole)], dim=-1)  # (S, N, 3)
    m = held_out_volume_measures(enc, head, hits, targets)
    assert m["held_out_token_recall"] == pytest.approx(2 / 3)
    assert m["held_out_token_fpr"] == pytest.approx(3 / 9)
    assert m["held_out_side_accuracy"] == pytest.approx(2 / 3) and m["held_out_one_sided"] == 3
