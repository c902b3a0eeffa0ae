"""Position embeddings for the 3D token grid, as pure functions.

brain3d reuses SigLIP's pretrained 2D table (resampled to the in-plane patch grid) and adds a learnable,
zero-initialised depth embedding, so at initialisation every axial slice sees exactly the 2D model's
positions. The reference code's fixed code (it discards the pretrained table) is kept for parity.
Token order everywhere is row-major over (D, H, W): index = (d * Hp + h) * Wp + w.
Table rows map to H (posterior -> anterior) and columns to W (patient left -> right).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from brain3d.errors import ConfigError


def resample_pos_table(table: torch.Tensor, grid_hw: tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """(G*G, d) square 2D position table -> (h*w, d) on an (h, w) grid, bicubic (as timm's
    `resample_abs_pos_embed`; antialiased because 448-px MedSigLIP's 32x32 table shrinks to 9x9)."""
    n, dim = table.shape
    g = math.isqrt(n)
    if g * g != n:
        raise ConfigError(f"the 2D position table has {n} rows, not a square grid")
    h, w = grid_hw
    grid = table.reshape(1, g, g, dim).permute(0, 3, 1, 2).float()  # (1, d, G, G)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False, antialias=antialias)
    return grid.permute(0, 2, 3, 1).reshape(h * w, dim).to(table.dtype)  # (h*w, d)


def reference_pos_code(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """The reference code's fixed code, (Dp*Hp*Wp, dim): linspace(-1, 1) over depth added to every channel,
    plus linspace(-1, 1) over H in channel 0 and over W in channel 1."""
    dp, hp, wp = grid
    cpu = torch.device("cpu")  # a fixed code: always computed on CPU, moved by the caller
    depth = torch.linspace(-1, 1, dp, device=cpu).reshape(dp, 1, 1).expand(dp, hp * wp, dim)  # (Dp, Hp*Wp, d)
    spatial = torch.zeros(hp * wp, dim, device=cpu)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, hp, device=cpu), torch.linspace(-1, 1, wp, device=cpu), indexing="ij")
    spatial[:, 0] = ys.reshape(-1)
    if dim > 1:
        spatial[:, 1] = xs.reshape(-1)
    return (depth + spatial.unsqueeze(0)).reshape(dp * hp * wp, dim)


def sincos_3d(grid: tuple[int, int, int], dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed sine/cosine code of each token's (d, h, w) position, (Dp*Hp*Wp, dim); used by the perceiver so
    that its queries can tell left from right and top from bottom. Axes get dim // 6 frequencies each."""
    dp, hp, wp = grid
    nfreq = max(dim // 6, 1)
    freqs = torch.exp(torch.arange(nfreq, device=device, dtype=torch.float32) * (-math.log(100.0) / nfreq))
    coords = torch.meshgrid(
        *(torch.arange(n, device=device, dtype=torch.float32) for n in (dp, hp, wp)), indexing="ij"
    )
    parts = []
    for c in coords:
        angles = c.reshape(-1, 1) * freqs * math.pi / 2  # (N, nfreq)
        parts += [torch.sin(angles), torch.cos(angles)]
    code = torch.cat(parts, dim=1)[:, :dim]  # (N, <= dim)
    if code.shape[1] < dim:
        code = F.pad(code, (0, dim - code.shape[1]))
    return code
