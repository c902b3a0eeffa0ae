"""Does the model look at its image? Compare a real volume with a zero volume, a voxel-shuffled one and its
left-right mirror: cosine of the visual tokens, and whether the generated report changes.

A model that ignores its image (the failure the reference code can slide into: the LM learns the report
template, the soft tokens become noise it tunes out) gives the same report for the real, zero and shuffled
volumes. A model that reads laterality names the other side for the mirror.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from brain3d.vocabulary import side_of
from brain3d.orientation import flip_left_right

VARIANTS = ("real", "zero", "shuffled", "mirrored")


def probe_inputs(volume: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(C, D, H, W) volume -> (4, C, D, H, W): real, all-zero, voxels shuffled (same histogram), mirrored."""
    g = torch.Generator().manual_seed(seed)
    flat = volume.reshape(-1)
    shuffled = flat[torch.randperm(flat.numel(), generator=g)].reshape(volume.shape)
    return torch.stack([volume, torch.zeros_like(volume), shuffled, flip_left_right(volume)])


@torch.no_grad()
def image_reliance(model, volume: torch.Tensor, max_new_tokens: int = 64, seed: int = 0,
                   autocast=None) -> dict[str, Any]:
    """Diagnostic dict for one preprocessed volume (C, D, H, W); `autocast` is a context factory (bf16)."""
    import contextlib

    ctx = autocast or contextlib.nullcontext
    was_training = model.training
    model.eval()
    try:
        x = probe_inputs(volume.float().cpu(), seed).to(model.device)  # (4, C, D, H, W)
        with ctx():
            feats = model.encode_volume(x)  # (4, N, dv)
            tokens = model.visual_tokens(feats).float()  # (4, K, dlm)
            texts = model.generate(features=feats, profile="greedy", max_new_tokens=max_new_tokens)
    finally:
        model.train(was_training)
    real = tokens[0].reshape(-1)
    out: dict[str, Any] = {"texts": dict(zip(VARIANTS, texts)), "sides": {v: side_of(t) for v, t in zip(VARIANTS, texts)}}
    for i, name in enumerate(VARIANTS[1:], start=1):
        out[f"token_cosine_real_vs_{name}"] = float(F.cosine_similarity(real, tokens[i].reshape(-1), dim=0))
        out[f"text_changes_{name}"] = texts[i].strip() != texts[0].strip()
    out["ignores_image"] = not (out["text_changes_zero"] or out["text_changes_shuffled"])
    expected = {"left": "right", "right": "left"}.get(out["sides"]["real"])
    out["mirror_flips_side"] = None if expected is None else out["sides"]["mirrored"] == expected
    return out
