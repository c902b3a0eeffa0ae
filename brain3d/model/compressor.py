"""Compressors: N encoder tokens on a (Dp, Hp, Wp) grid -> K tokens for the language model.

* seq_pool (reference): adaptive average pooling over the flattened sequence. Consecutive tokens in
  (d, h, w) order are pooled, so each of the K tokens covers whole rows that span both hemispheres.
* grid_pool (default): 3D adaptive average pooling to a (gd, gh, gw) grid with gd*gh*gw = K, keeping the
  layout: with gw >= 2, the patient's left (low W) and right land in different tokens.
* perceiver: K learned queries cross-attend (2 layers) to the tokens, which carry a fixed 3D sin/cos code.
Output token order for grid_pool is row-major over (gd, gh, gw).
"""

from __future__ import annotations

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

    def __init__(self, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        pooled = F.adaptive_avg_pool1d(x.transpose(1, 2), self.num_tokens)  # (B, dv, K)
        return pooled.transpose(1, 2)  # (B, K, dv)


class GridPool(nn.Module):
    """3D adaptive average pooling that keeps the D x H x W layout."""

    def __init__(self, num_tokens: int, pool_grid: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.pool_grid = tuple(pool_grid) if pool_grid is not None else default_pool_grid(num_tokens)
        self.num_tokens = num_tokens

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        b, n, dim = x.shape
        volume = x.transpose(1, 2).reshape(b, dim, *grid)  # (B, dv, Dp, Hp, Wp)
        pooled = F.adaptive_avg_pool3d(volume, self.pool_grid)  # (B, dv, gd, gh, gw)
        return pooled.flatten(2).transpose(1, 2)  # (B, K, dv)


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
        self.num_tokens = num_tokens
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
        return SeqPool(num_tokens)
    if name == "grid_pool":
        return GridPool(num_tokens, pool_grid)
    if name == "perceiver":
        return Perceiver(num_tokens, dim, perceiver_layers)
    raise ConfigError(f"compressor {name!r} is not one of grid_pool, seq_pool, perceiver")
