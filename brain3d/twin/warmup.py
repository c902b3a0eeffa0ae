"""The one optimisation loop the tiny twin's warm-ups share (report language for the LM, phantom slices for
the vision tower): AdamW, linear warm-up then cosine decay, gradient clipping, a per-step loss record."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

DONE = "brain3d_pretraining.json"  # each warm-up writes its summary here last: its presence means the folder is finished


def warm_up(params: Sequence[torch.nn.Parameter], step_loss: Callable[[], torch.Tensor], steps: int, lr: float,
            warm_steps: int, desc: str, progress: bool = False) -> list[float]:
    """Run `steps` optimiser steps on `step_loss()` (which draws its own batch); returns every step's loss."""
    params = list(params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm_steps) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    iterator = range(steps)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=desc, leave=False)
    losses: list[float] = []
    for _ in iterator:
        loss = step_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def mean_of(losses: Sequence[float], n: int = 10, last: bool = False) -> float:
    """Mean of the first (or last) `n` recorded losses."""
    part = list(losses[-n:] if last else losses[:n])
    return sum(part) / max(1, len(part))
