"""Region tokens: a segmentation read-out of the encoder's tokens, pooled into one soft token per tissue class.

Pooling K = 32 cells of ~25 mm erases what a report's *findings* are made of: a dark necrotic core inside a bright
lesion, a thin enhancing rim. A linear probe of the pooled cells reads necrosis at chance, while one number taken
inside the lesion's own mask reads it at .93 (GROUNDING.md). So the tokens are read *before* the pooling: a small
head predicts, for every encoder token, the fraction of each tissue class under it (whole tumour, core, necrotic /
non-enhancing core, edema, enhancing tumour — BraTS labels, `anatomy.rules`), supervised in phase 1 by the masks
BraTS ships for every subject (and phantoms have), and never needed at inference. Each class then gets one token:
the class-weighted contrast of the tokens it covers against the whole scan,

    t_r = sum_n p_rn (x_n - mean(x)) / (sum_n p_rn + tau)            # (B, dv); -> 0 when the class is absent

so its content says what that tissue looks like and its size says how much of it there is. What a class looks like is
read from the tokens *and* from the pixels under them: the encoder's features of a frozen ViT keep a dark core inside
a bright lesion poorly (a probe of the pooled tokens reads necrosis at chance), so every token also carries the mean,
minimum and maximum intensity of its own stem window per input channel (`patch_stats`: pooling that keeps extremes),
which the read-out sees when it segments and a learned map (`mix`, starting as the identity on the features) folds
into each class token. With a mirror compressor (tokens 2 dv wide) the second half carries the side, the same
contrast signed +1 on the patient's left half of the grid and -1 on the right (mirroring a scan negates it, as
mirror_pool's difference half). In the spirit of Reg2RG / MedRegion-CT / ORACLE-CT's mask-restricted pooling, but
with the masks learned, so a FLAIR scan without a segmentation gets its region tokens too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from brain3d.anatomy.rules import BRATS_EDEMA, BRATS_ENHANCING, BRATS_NECROTIC

REGION_CLASSES = ("whole", "core", "necrotic", "edema", "enhancing")


def class_masks(labels: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) integer BraTS labels -> (B, R, D, H, W) float 0/1 masks of REGION_CLASSES (3 read as 4)."""
    enhancing = (labels == BRATS_ENHANCING) | (labels == 3)
    necrotic = labels == BRATS_NECROTIC
    edema = labels == BRATS_EDEMA
    core = necrotic | enhancing
    whole = core | edema
    return torch.stack([whole, core, necrotic, edema, enhancing], dim=1).float()


def patch_stats(volumes: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                padding: tuple[int, int, int] = (0, 0, 0)) -> torch.Tensor:
    """(B, C, D, H, W) model input -> (B, N, 3 C): mean, minimum and maximum of every stem window per channel, in the
    encoder's (d, h, w) token order (the stem's own kernel, stride and depth padding, so N matches its tokens)."""
    mean = F.avg_pool3d(volumes, kernel, stride, padding, count_include_pad=False)
    big = torch.finfo(volumes.dtype).max
    high = F.max_pool3d(F.pad(volumes, _pads(padding), value=-big), kernel, stride)
    low = -F.max_pool3d(F.pad(-volumes, _pads(padding), value=-big), kernel, stride)
    stats = torch.cat([mean, low, high], dim=1)  # (B, 3 C, Dp, Hp, Wp)
    return stats.flatten(2).transpose(1, 2)  # (B, N, 3 C)


def _pads(padding: tuple[int, int, int]) -> list[int]:
    d, h, w = padding
    return [w, w, h, h, d, d]


def token_fractions(labels: torch.Tensor, grid: tuple[int, int, int], kernel: tuple[int, int, int],
                    stride: tuple[int, int, int]) -> torch.Tensor:
    """(B, D, H, W) labels on the model grid -> (B, N, R) fraction of each class under every encoder token, in the
    encoder's (d, h, w) token order. Pools with the stem's own kernel and stride (no padding: a depth-padded stem's
    border tokens get the nearest full window), then crops or pads to the token grid."""
    masks = class_masks(labels)  # (B, R, D, H, W)
    frac = F.avg_pool3d(masks, kernel, stride)  # (B, R, D', H', W')
    pads = []
    for have, want in zip(reversed(frac.shape[2:]), reversed(grid)):
        pads += [0, max(want - have, 0)]
    if any(pads):
        frac = F.pad(frac, pads, mode="replicate")
    frac = frac[:, :, : grid[0], : grid[1], : grid[2]]  # (B, R, Dp, Hp, Wp)
    return frac.flatten(2).transpose(1, 2)  # (B, N, R)


class RegionReadout(nn.Module):
    """Per-token class fractions (`logits`) and one token per class (`forward`) of width `out_dim` (dv or 2 dv)."""

    def __init__(self, dim: int, out_dim: int, stats_dim: int, classes: tuple[str, ...] = REGION_CLASSES,
                 tau: float = 1.0) -> None:
        super().__init__()
        if out_dim not in (dim, 2 * dim):
            raise ValueError(f"region tokens are dv or 2 dv wide, got {out_dim} for dv = {dim}")
        self.classes, self.tau, self.out_dim, self.dim = tuple(classes), float(tau), out_dim, dim
        self.num_tokens = len(self.classes)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Linear(dim + stats_dim, dim), nn.GELU(), nn.Linear(dim, len(self.classes)))
        self.mix = nn.Linear(dim + stats_dim, dim, bias=False)  # [features, stats] contrast -> token; starts as [I, 0]
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, :dim].copy_(torch.eye(dim))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dv + S) features with their window statistics -> (B, N, R) logits of each class's fraction."""
        return self.head(torch.cat([self.norm(x[..., : self.dim]), x[..., self.dim:]], dim=-1))

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        p = torch.sigmoid(self.logits(x))  # (B, N, R)
        centred = x - x.mean(dim=1, keepdim=True)  # (B, N, dv + S)
        norm = p.sum(dim=1).unsqueeze(-1) + self.tau  # (B, R, 1)
        tokens = self.mix(torch.einsum("bnr,bnd->brd", p, centred) / norm)  # (B, R, dv)
        if self.out_dim == self.dim:
            return tokens
        w = grid[2]
        col = torch.arange(w, device=x.device)
        sign = torch.where(col < w // 2, 1.0, -1.0) * (col != (w - 1) / 2)  # +1 patient left, -1 right, 0 midline
        sign = sign.to(x.dtype).repeat(grid[0] * grid[1])  # (N,) in (d, h, w) order
        sided = self.mix(torch.einsum("bnr,bnd->brd", p * sign[None, :, None], centred) / norm)  # (B, R, dv)
        return torch.cat([tokens, sided], dim=-1)  # (B, R, 2 dv)


def region_loss(logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor, pos_weight: float = 4.0) -> torch.Tensor:
    """Mean BCE of (B, N, R) logits against (B, N, R) token fractions over the subjects whose mask is `known` (B,);
    tumour tokens are rare, so their term counts `pos_weight` times (as the twin's tissue warm-up)."""
    if not bool(known.any()):
        return logits.sum() * 0.0  # keeps the graph (DDP) when no subject of the batch has a mask
    lg, tg = logits[known].float(), targets[known].float()
    weight = 1.0 + (pos_weight - 1.0) * (tg > 0).float()
    return F.binary_cross_entropy_with_logits(lg, tg, weight=weight)
