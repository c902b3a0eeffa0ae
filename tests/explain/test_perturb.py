import numpy as np
import pytest
import torch

from brain3d.explain.perturb import fill_values, perturb, sample_masks, score_masks


def test_masks_are_seeded_and_start_with_the_scan_itself():
    a, b = sample_masks(50, 7, seed=3), sample_masks(50, 7, seed=3)
    assert np.array_equal(a, b) and a.shape == (50, 7)
    assert (a[0] == 1).all() and set(np.unique(a[1:])) == {0, 1}
    assert not np.array_equal(a, sample_masks(50, 7, seed=4))


def test_perturb_switches_supervoxels_off_and_keeps_background():
    volume = torch.arange(2 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3) + 1  # (C=2, D=1, H=2, W=3)
    labels = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    masks = torch.tensor([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=torch.uint8)
    fill = torch.tensor([-1.0, -2.0])
    out = perturb(volume, labels, masks, fill)  # (4, 2, 1, 2, 3)
    assert out.shape == (4, 2, 1, 2, 3)
    assert torch.equal(out[0], volume)
    off1 = labels == 1
    assert (out[1][0][off1] == -1).all() and (out[1][1][off1] == -2).all()
    assert torch.equal(out[1][:, ~off1], volume[:, ~off1])
    assert torch.equal(out[3][:, labels == 0], volume[:, labels == 0])  # background always kept


def test_fill_values():
    volume = torch.tensor([[[[0.0, 0.2, 0.4, 0.9]]]])
    brain = torch.tensor([[[False, True, True, True]]])
    assert fill_values(volume, brain, "median").tolist() == pytest.approx([0.4])
    assert fill_values(volume, brain, "zero").tolist() == [0.0]


def test_scores_do_not_depend_on_the_batch_size():
    volume = torch.rand(1, 4, 5, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 6, (4, 5, 6), generator=torch.Generator().manual_seed(1))
    masks = sample_masks(23, 5, seed=0)
    calls = []

    def scorer(x):  # (B, C, D, H, W) -> (B,)
        calls.append(x.shape[0])
        return (x ** 2).flatten(1).sum(1)

    fill = torch.zeros(1)
    one = score_masks(scorer, volume, labels, masks, fill, batch=1)
    many = score_masks(scorer, volume, labels, masks, fill, batch=10)
    assert np.array_equal(one, many) and one.shape == (23,)
    assert calls == [1] * 23 + [10, 10, 3]
