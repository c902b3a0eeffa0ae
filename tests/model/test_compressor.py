"""Compressors: grid_pool / grid_attn / mirror_pool keep the patient's left and right apart; seq_pool (reference)
does not; mirror_pool puts the side into token content and is flip-equivariant."""

import pytest
import torch

from brain3d.errors import ConfigError
from brain3d.model.compressor import (
    GridAttnPool, GridPool, MirrorPool, Perceiver, SeqPool, adaptive_cells, build_compressor, default_mirror_grid,
    default_pool_grid,
)

GRID = (8, 4, 6)  # (Dp, Hp, Wp); W index 0 = patient's far left


def _features(seed=0):
    torch.manual_seed(seed)
    return torch.randn(2, GRID[0] * GRID[1] * GRID[2], 16)


def _change_left_half(x):
    grid = x.reshape(2, *GRID, 16).clone()
    grid[:, :, :, : GRID[2] // 2] += torch.randn_like(grid[:, :, :, : GRID[2] // 2])  # low W indices only
    return grid.reshape_as(x)


def test_default_pool_grid():
    assert default_pool_grid(32) == (2, 4, 4)
    assert default_pool_grid(64) == (4, 4, 4)
    assert default_pool_grid(8) == (2, 2, 2)
    assert default_pool_grid(6) == (3, 1, 2)
    with pytest.raises(ConfigError):
        default_pool_grid(7)


@pytest.mark.parametrize("pool", [GridPool(8, 16), GridAttnPool(8, 16)], ids=["grid_pool", "grid_attn"])
def test_grid_pool_change_on_the_left_changes_only_left_tokens(pool):
    if isinstance(pool, GridAttnPool):
        torch.nn.init.normal_(pool.score.weight)  # trained scores must not leak across the midline either
    x = _features()
    a, b = pool(x, GRID), pool(_change_left_half(x), GRID)
    assert a.shape == (2, 8, 16)
    changed = (a - b).abs().amax(dim=(0, 2)) > 1e-6  # (K,)
    gw = torch.arange(8) % 2  # token index = (d * gh + h) * gw_size + w
    assert changed[gw == 0].all() and not changed[gw == 1].any()


def test_seq_pool_mixes_hemispheres_in_every_token():
    pool = SeqPool(8, 16)
    x = _features()
    a, b = pool(x, GRID), pool(_change_left_half(x), GRID)
    assert ((a - b).abs().amax(dim=(0, 2)) > 1e-6).all()


def test_grid_pool_is_the_mean_of_its_cell():
    x = _features()
    out = GridPool(8, 16, (2, 2, 2))(x, GRID)
    cell = x.reshape(2, *GRID, 16)[:, :4, :2, :3].mean(dim=(1, 2, 3))
    torch.testing.assert_close(out[:, 0], cell)


@pytest.mark.parametrize("grid, pool_grid", [(GRID, (2, 2, 2)), ((5, 7, 3), (2, 4, 4)), ((32, 9, 9), (2, 4, 4))])
def test_grid_attn_starts_as_grid_pool_and_cells_match_adaptive_pooling(grid, pool_grid):
    torch.manual_seed(0)
    x = torch.randn(2, grid[0] * grid[1] * grid[2], 16)
    torch.testing.assert_close(GridAttnPool(8, 16, pool_grid)(x, grid), GridPool(8, 16, pool_grid)(x, grid))
    cells = adaptive_cells(grid, pool_grid)
    assert cells.shape == (pool_grid[0] * pool_grid[1] * pool_grid[2], x.shape[1]) and cells.any(1).all()


def test_grid_attn_learns_to_pick_the_odd_token_out():
    """One token per cell carries a marker; learned scores pull each cell towards it, where a mean dilutes it 24-fold."""
    torch.manual_seed(0)
    pool = GridAttnPool(8, 16, (2, 2, 2))
    x = torch.randn(2, 192, 16) * 0.1
    first = adaptive_cells(GRID, (2, 2, 2)).float().argmax(dim=1)  # (K,) the first token of each cell
    x[:, first, 0] += 3.0
    opt = torch.optim.Adam(pool.parameters(), lr=0.05)
    for _ in range(100):
        loss = -pool(x, GRID)[..., 0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert pool(x, GRID)[..., 0].mean() > 4 * GridPool(8, 16, (2, 2, 2))(x, GRID)[..., 0].mean()


def test_perceiver_shape_gradients_and_position_awareness():
    torch.manual_seed(0)
    per = Perceiver(4, 16, layers=2)
    x = torch.randn(1, 48, 16).expand(2, 48, 16).clone()
    x[1] = x[1].reshape(2, 4, 6, 16).flip(2).reshape(48, 16)  # mirror left/right
    out = per(x, (2, 4, 6))
    assert out.shape == (2, 4, 16)
    assert not torch.allclose(out[0], out[1], atol=1e-4)  # the 3D position code tells the mirror apart
    (out * torch.randn_like(out)).sum().backward()  # (a plain sum is constant after LayerNorm)
    assert per.queries.grad is not None and per.queries.grad.abs().sum() > 0


def test_build_compressor_rejects_unknown():
    assert isinstance(build_compressor("seq_pool", 4, 8), SeqPool)
    with pytest.raises(ConfigError):
        build_compressor("mean", 4, 8)


def _mirror(x, grid):
    b, _, c = x.shape
    return x.reshape(b, *grid, c).flip(3).reshape(b, -1, c)  # W reversed: the patient's left <-> right


@pytest.mark.parametrize("grid, pool_grid", [(GRID, (2, 2, 1)), ((16, 8, 8), (4, 4, 2)), ((32, 9, 9), (4, 4, 2)),
                                             ((5, 7, 3), (2, 2, 1))])
def test_mirror_pool_negates_the_difference_half_of_a_mirrored_scan(grid, pool_grid):
    """Flip-equivariant by construction: same pair means, negated left-minus-right, on even and odd grids."""
    torch.manual_seed(0)
    x = torch.randn(2, grid[0] * grid[1] * grid[2], 16)
    k = pool_grid[0] * pool_grid[1] * pool_grid[2]
    pool = MirrorPool(k, 16, pool_grid)
    a, b = pool(x, grid), pool(_mirror(x, grid), grid)
    assert a.shape == (2, k, 32) and pool.out_dim == 32
    torch.testing.assert_close(b[..., :16], a[..., :16])
    torch.testing.assert_close(b[..., 16:], -a[..., 16:])


def test_mirror_pool_is_an_invertible_map_of_the_grid_cells():
    """Pair mean + half-difference give back both cells exactly: nothing of grid_pool's 2K cells is lost."""
    x = _features()
    pairs = MirrorPool(4, 16, (2, 2, 1))(x, GRID)  # (B, 4, 32)
    cells = GridPool(8, 16, (2, 2, 2))(x, GRID).reshape(2, 2, 2, 2, 16)  # (B, gd, gh, gw=2, dv)
    mean, diff = pairs[..., :16].reshape(2, 2, 2, 16), pairs[..., 16:].reshape(2, 2, 2, 16)
    torch.testing.assert_close(mean + diff, cells[:, :, :, 0])  # the patient's left cell
    torch.testing.assert_close(mean - diff, cells[:, :, :, 1])  # its mirror on the right


def test_mirror_pool_puts_the_side_in_content():
    """A bright left-only feature and a bright right-only one give the same tokens up to the difference's sign."""
    x = torch.zeros(1, GRID[0] * GRID[1] * GRID[2], 16)
    grid = x.reshape(1, *GRID, 16)
    left = grid.clone()
    left[:, 2:4, 1:3, 0:2, 0] = 1.0
    pool = MirrorPool(4, 16, (2, 2, 1))
    a, b = pool(left.reshape_as(x), GRID), pool(_mirror(left.reshape_as(x), GRID), GRID)
    assert a[..., 16].max() > 0 and b[..., 16].min() < 0  # content says left (+) or right (-)
    assert default_mirror_grid(32) == (4, 4, 2) and default_mirror_grid(8) == (4, 2, 1)


@pytest.mark.parametrize("grid", [GRID, (32, 9, 9)])
def test_mirror_attn_starts_as_mirror_pool_and_stays_flip_equivariant_when_trained(grid):
    torch.manual_seed(0)
    x = torch.randn(2, grid[0] * grid[1] * grid[2], 16)
    attn, plain = build_compressor("mirror_attn", 4, 16, (2, 2, 1)), build_compressor("mirror_pool", 4, 16, (2, 2, 1))
    torch.testing.assert_close(attn(x, grid), plain(x, grid))
    torch.nn.init.normal_(attn.cells.score.weight)  # trained scores
    a, b = attn(x, grid), attn(_mirror(x, grid), grid)
    assert not torch.allclose(a, plain(x, grid))
    torch.testing.assert_close(b[..., :16], a[..., :16])
    torch.testing.assert_close(b[..., 16:], -a[..., 16:])
