"""Compressors: N encoder tokens on a (Dp, Hp, Wp) grid -> K tokens for the language model.

* seq_pool (reference): adaptive average pooling over the flattened sequence. Consecutive tokens in
  (d, h, w) order are pooled, so each of the K tokens covers whole rows that span both hemispheres.
* grid_pool (default): 3D adaptive average pooling to a (gd, gh, gw) grid with gd*gh*gw = K, keeping the
  layout: with gw >= 2, the patient's left (low W) and right land in different tokens.
* grid_attn: the same cells as grid_pool, but each cell is a softmax-weighted mean of its tokens, with a
  learned linear score per token. Scores start at zero, so it starts as grid_pool exactly; training can
  then weight up the few tokens a small lesion covers instead of averaging them among the whole cell.
* mirror_pool: grid_pool on a grid twice as wide (2K cells), then each cell is paired with its mirror cell
  across the midsagittal plane (W is patient left->right in brain3d, so the mirror of cell w is gw-1-w). A
  token is the concatenation of the pair's mean (what is there) and its left-minus-right half-difference
  (which side): the side sits in the token's *content*, not in which token is bright, so a language model
  that cannot tell soft tokens apart by position still reads it. It is an invertible linear map of the 2K
  cells (nothing is lost), and mirroring a scan negates exactly the difference half: flip-equivariant by
  construction. Tokens are 2 dv wide (`out_dim`).
* mirror_attn: mirror_pool over grid_attn's cells (each cell a learned softmax-weighted mean of its tokens,
  starting as the plain mean): a lesion that covers a few of a cell's tokens need not be averaged away. The
  score is the same for every token, so mirroring a scan still negates exactly the difference half.
* perceiver: K learned queries cross-attend (2 layers) to the tokens, which carry a fixed 3D sin/cos code.
Output token order for grid_pool, grid_attn and mirror_pool / mirror_attn (over the pair grid) is row-major over (gd, gh, gw).
Every compressor has `out_dim`, the width of its tokens (dv, or 2 dv for the mirror compressors).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from brain3d.errors import ConfigError
from brain3d.model.posembed import sincos_3d


def default_pool_grid(num_tokens: int) -> tuple[int, int, int]:
    """(gd, gh, gw) for K tokens: the largest even square in-plane grid g x g with K / g^2 >= 2 depth cells
    (K=32 -> 2x4x4, K=64 -> 4x4x4, K=8 -> 2x2x2); else (K/2, 1, 2) so that left and right still separate."""
    for g in range(int(num_tokens ** 0.5), 1, -1):
        if g % 2 == 0 and num_tokens % (g * g) == 0 and num_tokens // (g * g) >= 2:
            return num_tokens // (g * g), g, g
    if num_tokens % 2 == 0:
        return num_tokens // 2, 1, 2
    raise ConfigError(f"grid_pool needs an even number of tokens to keep left and right apart, got {num_tokens}")


class SeqPool(nn.Module):
    """The reference's pooling: adaptive average over the flattened token sequence."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.num_tokens, self.out_dim = num_tokens, dim

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), self.num_tokens)  # (B, dv, K)
        return pooled.transpose(1, 2)  # (B, K, dv)


class GridPool(nn.Module):
    """3D adaptive average pooling that keeps the D x H x W layout."""

    def __init__(self, num_tokens: int, dim: int, pool_grid: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.pool_grid = tuple(pool_grid) if pool_grid is not None else default_pool_grid(num_tokens)
        self.num_tokens, self.out_dim = num_tokens, dim

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        return grid_cells(x, grid, self.pool_grid).flatten(2).transpose(1, 2)  # (B, K, dv)


def grid_cells(x: torch.Tensor, grid: tuple[int, int, int], cells: tuple[int, int, int]) -> torch.Tensor:
    """(B, N, dv) tokens on `grid` -> (B, dv, gd, gh, gw) adaptive-average cells (layout kept)."""
    b, _, dim = x.shape
    volume = x.transpose(1, 2).reshape(b, dim, *grid)  # (B, dv, Dp, Hp, Wp)
    return F.adaptive_avg_pool3d(volume, cells)  # (B, dv, gd, gh, gw)


def default_mirror_grid(num_tokens: int) -> tuple[int, int, int]:
    """(gd, gh, gw) pair grid of mirror_pool for K tokens: the default grid of 2K cells with its W halved
    (K=32 -> 4 x 4 x 2 pairs of a 4 x 4 x 4 cell grid; K=8 -> 4 x 2 x 1 pairs of 4 x 2 x 2 cells)."""
    gd, gh, gw = default_pool_grid(2 * num_tokens)
    return gd, gh, gw // 2


class MirrorPool(nn.Module):
    """Mirrored cell pairs -> [pair mean, (left - right) / 2] tokens (see the module docstring); `attn` pools each
    cell with learned token weights (grid_attn's cells) instead of a plain mean."""

    def __init__(self, num_tokens: int, dim: int, pool_grid: tuple[int, int, int] | None = None,
                 attn: bool = False) -> None:
        super().__init__()
        self.pool_grid = tuple(pool_grid) if pool_grid is not None else default_mirror_grid(num_tokens)
        self.num_tokens, self.out_dim = num_tokens, 2 * dim
        gd, gh, gw = self.pool_grid
        self.cells = GridAttnPool(2 * num_tokens, dim, (gd, gh, 2 * gw)) if attn else None

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        gd, gh, gw = self.pool_grid
        if self.cells is None:
            cells = grid_cells(x, grid, (gd, gh, 2 * gw))  # (B, dv, gd, gh, 2 gw); W index 0 = patient's far left
        else:
            cells = self.cells(x, grid).transpose(1, 2).reshape(x.shape[0], -1, gd, gh, 2 * gw)  # (B, dv, gd, gh, 2 gw)
        left, right = cells[..., :gw], cells[..., gw:].flip(-1)  # right[..., w] is the mirror of left[..., w]
        pairs = torch.cat([(left + right) / 2, (left - right) / 2], dim=1)  # (B, 2 dv, gd, gh, gw)
        return pairs.flatten(2).transpose(1, 2)  # (B, K, 2 dv)


def adaptive_cells(grid: tuple[int, int, int], pool_grid: tuple[int, int, int]) -> torch.Tensor:
    """(K, N) bool: which of the N grid tokens each of the K cells holds, cut exactly like adaptive_avg_pool3d
    (cell i of g along an axis of n covers [floor(i n / g), ceil((i + 1) n / g)), so cells may overlap)."""
    axes = []
    for n, g in zip(grid, pool_grid):
        idx = torch.arange(n)
        lo = torch.tensor([(i * n) // g for i in range(g)])
        hi = torch.tensor([-((-(i + 1) * n) // g) for i in range(g)])
        axes.append((idx[None, :] >= lo[:, None]) & (idx[None, :] < hi[:, None]))  # (g, n)
    d, h, w = axes
    cells = d[:, None, None, :, None, None] & h[None, :, None, None, :, None] & w[None, None, :, None, None, :]
    return cells.reshape(math.prod(pool_grid), math.prod(grid))  # (K, N)


class GridAttnPool(nn.Module):
    """grid_pool's cells, each pooled with softmax weights from a learned per-token score (zero-init: a mean)."""

    def __init__(self, num_tokens: int, dim: int, pool_grid: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.pool_grid = tuple(pool_grid) if pool_grid is not None else default_pool_grid(num_tokens)
        self.num_tokens, self.out_dim = num_tokens, dim
        self.norm = nn.LayerNorm(dim)
        self.score = nn.Linear(dim, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        self._cells: dict[tuple, torch.Tensor] = {}  # (grid, device) -> (K, N) membership, built once

    def cells(self, grid: tuple[int, int, int], device: torch.device) -> torch.Tensor:
        key = (tuple(grid), str(device))
        if key not in self._cells:
            self._cells[key] = adaptive_cells(key[0], self.pool_grid).to(device)
        return self._cells[key]

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        s = self.score(self.norm(x)).squeeze(-1)  # (B, N)
        member = self.cells(grid, x.device)  # (K, N)
        logits = s[:, None, :].masked_fill(~member, float("-inf"))  # (B, K, N)
        weights = torch.softmax(logits, dim=-1).to(x.dtype)
        return weights @ x  # (B, K, dv)


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attn(self.norm_q(queries), memory, memory, need_weights=False)
        queries = queries + attended  # (B, K, dv)
        return queries + self.mlp(self.norm_mlp(queries))


class Perceiver(nn.Module):
    """K learned queries, `layers` cross-attention blocks over position-coded tokens."""

    def __init__(self, num_tokens: int, dim: int, layers: int = 2) -> None:
        super().__init__()
        self.num_tokens, self.out_dim = num_tokens, dim
        self.queries = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)  # (K, dv)
        self.norm_kv = nn.LayerNorm(dim)
        heads = next(h for h in (16, 12, 8, 4, 2, 1) if dim % h == 0 and (dim // h >= 32 or h == 1))
        self.layers = nn.ModuleList(PerceiverLayer(dim, heads) for _ in range(layers))
        self.norm_out = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        memory = self.norm_kv(x) + sincos_3d(grid, x.shape[-1], device=x.device).to(x.dtype)  # (B, N, dv)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1)  # (B, K, dv)
        for layer in self.layers:
            q = layer(q, memory)
        return self.norm_out(q)


def build_compressor(name: str, num_tokens: int, dim: int, pool_grid=None, perceiver_layers: int = 2) -> nn.Module:
    if name == "seq_pool":
        return SeqPool(num_tokens, dim)
    if name == "grid_pool":
        return GridPool(num_tokens, dim, pool_grid)
    if name in ("mirror_pool", "mirror_attn"):
        return MirrorPool(num_tokens, dim, pool_grid, attn=name == "mirror_attn")
    if name == "grid_attn":
        return GridAttnPool(num_tokens, dim, pool_grid)
    if name == "perceiver":
        return Perceiver(num_tokens, dim, perceiver_layers)
    raise ConfigError(f"compressor {name!r} is not one of grid_pool, grid_attn, mirror_pool, mirror_attn, seq_pool, perceiver")
