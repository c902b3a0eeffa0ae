"""Learning-rate schedule as a pure function of the optimizer step: linear warm-up, then cosine decay.

The loop sets each parameter group's lr from `lr_factor` before every optimizer step, so the schedule has no
state of its own to save: resuming at step s gives exactly the lr an unbroken run had at step s.
"""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base lr for optimizer step `step` (0-based).

    Rises linearly from 1/(warmup+1) to 1 over `warmup_steps` steps, then follows a half cosine from 1 down
    to `min_ratio` at the last step (`total_steps - 1`).
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup_steps = max(0, min(warmup_steps, total_steps - 1))
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = total_steps - warmup_steps - 1
    if decay_steps <= 0:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(total_steps: int, warmup_ratio: float) -> int:
    """Warm-up length as a share of all optimizer steps (rounded, at least one step when the ratio is > 0)."""
    if warmup_ratio <= 0:
        return 0
    return max(1, round(total_steps * warmup_ratio))
