"""The tiny vision tower's warm-up: captions and patch targets from masks, mirroring, a short run in place."""

import json
import shutil

import pytest
import torch

from brain3d.twin.vision_pretrain import (
    CAPTION_WORDS, VisionWarmup, caption_of, held_out_measures, mirror_captions, patch_fractions, phantom_slices,
    pretrain_vision_model, sigmoid_loss,
)


def words(ids):
    return [CAPTION_WORDS[i - 3] for i in ids]


def blob(h0, h1, w0, w1, size=16):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[h0:h1, w0:w1] = True
    return m


def test_caption_names_the_image_half_and_core():
    low_col = blob(10, 14, 1, 5)  # 16 pixels in columns < 8, rows >= 8
    assert words(caption_of(low_col, torch.zeros_like(low_col), 3)) == ["lesion", "col-low", "row-high", "core-solid"]
    assert words(caption_of(low_col, low_col, 3))[3] == "core-necrotic"
    both = blob(2, 6, 6, 10)  # straddles the column midline
    assert words(caption_of(both, torch.zeros_like(both), 3))[1:3] == ["col-both", "row-low"]
    empty = torch.zeros(16, 16, dtype=torch.bool)
    assert words(caption_of(empty, empty, 3)) == ["normal", "col-none", "row-none", "core-none"]


def test_mirroring_swaps_only_the_column_half():
    low_col = blob(10, 14, 1, 5)
    caps = torch.tensor([caption_of(low_col, low_col, 3), caption_of(low_col.flip(-1), low_col.flip(-1), 3)])
    assert torch.equal(mirror_captions(caps), caps.flip(0))
    assert torch.equal(mirror_captions(mirror_captions(caps)), caps)


def test_patch_fractions_follow_token_order():
    m = blob(0, 8, 8, 16)  # top-right 8 x 8 of a 16 x 16 slice -> patch (row 0, col 1) with patch size 8
    assert patch_fractions(m[None], 8)[0].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_sigmoid_loss_prefers_matching_pairs():
    img = torch.eye(3)
    same = torch.eye(3, dtype=torch.bool)
    good = sigmoid_loss(img, img.clone(), torch.tensor(2.0), torch.tensor(0.0), same)
    bad = sigmoid_loss(img, img.roll(1, 0), torch.tensor(2.0), torch.tensor(0.0), same)
    assert good < bad


def test_phantom_slices_are_captioned_from_their_masks():
    data = phantom_slices(VisionWarmup(subjects=4, image_size=(16, 32, 32), voxel_mm=4.0, min_pixels=2))
    assert data.images.shape[1:] == (32, 32) and data.images.shape[0] == data.captions.shape[0] == data.masks.shape[0]
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    has_lesion = data.captions[:, 0] == 3 + CAPTION_WORDS.index("lesion")
    assert bool(has_lesion.any()) and bool((~has_lesion).any())
    assert torch.equal(has_lesion, data.masks.flatten(1).sum(1) >= 2)


@pytest.mark.slow
def test_warm_up_saves_in_place_and_loads_as_a_vision_tower(tiny_models, tmp_path):
    from brain3d.model.backbones import load_vision_tower

    folder = tmp_path / "vision"
    shutil.copytree(tiny_models["vision"], folder)
    before = load_vision_tower(folder).embeddings.patch_embedding.weight.clone()
    cfg = VisionWarmup(subjects=4, steps=6, batch_size=8, image_size=(16, 32, 32), min_pixels=2)
    summary = pretrain_vision_model(folder, cfg)
    assert summary["steps"] == 6 and summary["slices"] > 0
    assert {"held_out_caption_accuracy", "held_out_patch_recall", "held_out_patch_fpr"} <= set(summary)
    # the caption accuracy is the saved tower's own on phantoms it never saw (recomputed from the folder)
    from dataclasses import asdict

    from transformers import SiglipModel

    held = phantom_slices(VisionWarmup(**{**asdict(cfg), "seed": cfg.seed + 7919, "subjects": max(4, cfg.subjects // 6)}))
    saved = SiglipModel.from_pretrained(folder, dtype=torch.float32)
    probe = torch.nn.Linear(saved.config.vision_config.hidden_size, 1)
    assert held_out_measures(saved, probe, held)["held_out_caption_accuracy"] == pytest.approx(
        summary["held_out_caption_accuracy"], abs=1e-6)
    assert json.loads((folder / "brain3d_pretraining.json").read_text(encoding="utf-8"))["steps"] == 6
    after = load_vision_tower(folder).embeddings.patch_embedding.weight
    assert not torch.allclose(before, after)
