"""Region tokens: token fractions follow the stem's windows, mirroring negates only the sided half, unknown masks
carry no loss."""

from __future__ import annotations

import torch

from brain3d.anatomy.rules import UNKNOWN_LABEL
from brain3d.model.regions import (
    REGION_CLASSES,
    RegionReadout,
    class_masks,
    patch_stats,
    region_loss,
    token_fractions,
)
from brain3d.orientation import flip_left_right


def test_class_masks_follow_brats_labels():
    labels = torch.tensor([[[[0, 1, 2, 3, 4]]]])  # (1, 1, 1, 5)
    m = class_masks(labels)[0, :, 0, 0]  # (R, 5)
    got = {name: m[i].tolist() for i, name in enumerate(REGION_CLASSES)}
    assert got == {"whole": [0, 1, 1, 1, 1], "core": [0, 1, 0, 1, 1], "necrotic": [0, 1, 0, 0, 0],
                   "edema": [0, 0, 1, 0, 0], "enhancing": [0, 0, 0, 1, 1]}


def test_token_fractions_on_a_planted_block():
    labels = torch.zeros(1, 8, 16, 16, dtype=torch.long)  # (B, D, H, W), stem 2 x 8 x 8 -> grid 4 x 2 x 2
    labels[0, 2:4, 0:8, 0:4] = 1  # half of token (d=1, h=0, w=0) is necrotic core
    frac = token_fractions(labels, (4, 2, 2), (2, 8, 8), (2, 8, 8))  # (1, N=16, R)
    assert frac.shape == (1, 16, len(REGION_CLASSES))
    necrotic = frac[0, :, REGION_CLASSES.index("necrotic")].reshape(4, 2, 2)
    expected = torch.zeros(4, 2, 2)
    expected[1, 0, 0] = 0.5
    assert torch.allclose(necrotic, expected)
    # W index 0 is the patient's left: the planted block is in the left column of tokens, nowhere else
    assert necrotic[..., 1].sum() == 0


def test_region_tokens_are_mirror_equivariant():
    torch.manual_seed(0)
    grid = (2, 3, 4)
    readout = RegionReadout(8, 16, stats_dim=3).eval()
    with torch.no_grad():
        readout.mix.weight.add_(0.1 * torch.randn_like(readout.mix.weight))  # the statistics count too
    x = torch.randn(2, 24, 11)  # (B, N, dv + S) in (d, h, w) order
    mirrored = flip_left_right(x.reshape(2, *grid, 11).permute(0, 4, 1, 2, 3)).permute(0, 2, 3, 4, 1).reshape(2, 24, 11)
    t, tm = readout(x, grid), readout(mirrored, grid)  # (B, R, 2 dv)
    assert torch.allclose(t[..., :8], tm[..., :8], atol=1e-5)  # what the tissue looks like: unchanged
    assert torch.allclose(t[..., 8:], -tm[..., 8:], atol=1e-5)  # which side: negated
    assert t[..., 8:].abs().max() > 1e-3


def test_region_loss_counts_only_known_masks():
    logits = torch.zeros(2, 4, len(REGION_CLASSES), requires_grad=True)
    targets = torch.ones(2, 4, len(REGION_CLASSES))
    known = torch.tensor([True, False])
    loss = region_loss(logits, targets, known)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0
    none = region_loss(logits, targets, torch.tensor([False, False]))
    assert float(none.detach()) == 0.0 and none.requires_grad
    assert UNKNOWN_LABEL > 4


def test_patch_stats_read_each_stem_window():
    vol = torch.full((1, 1, 4, 16, 16), 0.5)  # (B, C, D, H, W); stem 2 x 8 x 8 -> grid 2 x 2 x 2
    vol[0, 0, 2, 9, 1] = 0.1  # one dark voxel in window (d=1, h=1, w=0): the patient's left
    vol[0, 0, 0, 0, 15] = 0.9  # one bright voxel in window (0, 0, 1)
    stats = patch_stats(vol, (2, 8, 8), (2, 8, 8))  # (1, N=8, 3)
    mean, low, high = stats[0].T.reshape(3, 2, 2, 2)
    assert low[1, 1, 0] == 0.1 and (low.flatten() == 0.5).sum() == 7
    assert high[0, 0, 1] == 0.9 and (high.flatten() == 0.5).sum() == 7
    assert torch.isclose(mean[1, 1, 0], torch.tensor(0.5 - 0.4 / 128))
    padded = patch_stats(vol, (2, 8, 8), (1, 8, 8), (1, 0, 0))  # the reference stem: depth stride 1, padding 1
    assert padded.shape == (1, 5 * 2 * 2, 3) and padded[..., 1].min() == 0.1  # padding never reads as dark


def test_the_sided_half_weighs_the_patients_left_plus_and_the_right_minus():
    """The side convention of the region tokens (as mirror_pool's difference half: left minus right), written out:
    the sided half is the class-weighted mean of the centred tokens signed +1 on the low-W half (the patient's
    left), -1 on the high-W half and 0 on a middle column."""
    torch.manual_seed(0)
    readout = RegionReadout(8, 16, stats_dim=3).eval()
    for grid, signs in (((2, 1, 3), [1.0, 0.0, -1.0]), ((1, 2, 4), [1.0, 1.0, -1.0, -1.0])):
        n = grid[0] * grid[1] * grid[2]
        x = torch.randn(2, n, 11)  # (B, N, dv + S) in (d, h, w) order
        t = readout(x, grid)  # (B, R, 2 dv)
        p = torch.sigmoid(readout.logits(x))  # (B, N, R)
        centred = x - x.mean(dim=1, keepdim=True)
        norm = p.sum(dim=1).unsqueeze(-1) + readout.tau
        sign = torch.tensor(signs).repeat(grid[0] * grid[1])  # (N,)
        expected = readout.mix(torch.einsum("bnr,bnd->brd", p * sign[None, :, None], centred) / norm)
        torch.testing.assert_close(t[..., 8:], expected, atol=1e-5, rtol=1e-5)
