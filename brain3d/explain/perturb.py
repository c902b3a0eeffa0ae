"""Perturbation: random on/off masks over supervoxels, applied to the model tensor a whole batch at a time.

The reference code perturbed and scored one volume per forward pass; here a batch of masks becomes a batch of
volumes with one gather and one `where`, and the scorer sees (B, C, D, H, W) at once. Sampling is LIME's: the first
sample is the scan itself (all on), the others switch every supervoxel on with probability ½, from one seeded
generator, so the same seed gives the same samples whatever the batch size."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (B, C, D, H, W) → (B,)


def sample_masks(n_samples: int, n_features: int, seed: int) -> np.ndarray:
    """(n_samples, n_features) uint8 masks; row 0 all ones (the unperturbed scan)."""
    rng = np.random.default_rng(seed)
    masks = rng.integers(0, 2, size=(n_samples, n_features), dtype=np.uint8)
    masks[0] = 1
    return masks


def fill_values(volume: torch.Tensor, brain: torch.Tensor, fill: str) -> torch.Tensor:
    """(C,) value per channel that a switched-off supervoxel takes: the brain's median, or zero."""
    if fill == "zero":
        return torch.zeros(volume.shape[0], dtype=volume.dtype, device=volume.device)
    return torch.stack([c[brain].median() for c in volume])  # (C,)


def perturb(volume: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """volume (C, D, H, W), labels (D, H, W) long in 0..S, masks (B, S) → (B, C, D, H, W): supervoxel s kept where
    masks[:, s-1] is 1, else set to `fill` (C,); background (label 0) always kept."""
    keep = torch.cat([torch.ones_like(masks[:, :1]), masks], dim=1).bool()  # (B, S + 1)
    keep = keep[:, labels]  # (B, D, H, W)
    return torch.where(keep[:, None], volume[None], fill.view(1, -1, 1, 1, 1))


@torch.no_grad()
def score_masks(scorer: Scorer, volume: torch.Tensor, labels: torch.Tensor, masks: np.ndarray, fill: torch.Tensor,
                batch: int) -> np.ndarray:
    """(N,) float64 scores of the N perturbed volumes, `batch` at a time (batch 1 = the reference's loop)."""
    m = torch.as_tensor(masks, device=volume.device)
    out = [scorer(perturb(volume, labels, m[i:i + batch], fill)).double().cpu() for i in range(0, len(m), batch)]
    return torch.cat(out).numpy()
