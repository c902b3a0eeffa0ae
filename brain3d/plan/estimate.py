"""Memory and cost arithmetic of `brain3d plan`: pure functions of counts and measured points.

Bytes everywhere; sizes given by a user ("24GB") are read as binary units, the way GPU memory is sized
(a "24 GB" card holds 24 GiB).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from brain3d.errors import ConfigError

GiB = 2**30
_UNITS = {"": GiB, "g": GiB, "gb": GiB, "gib": GiB, "m": 2**20, "mb": 2**20, "mib": 2**20, "t": 2**40, "tb": 2**40,
          "tib": 2**40}
# bitsandbytes NF4 with double quantisation: 4 bits per weight, one 8-bit absmax per 64 weights, and one float32
# scale per 256 of those absmax values
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
ADAMW_STATES = 2  # exp_avg and exp_avg_sq, float32, per trained parameter


def parse_size(text: str) -> int:
    """'24GB', '24 GiB', '80G', '16000MB' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"memory size {text!r} is not a number with a unit such as 24GB or 16000MB")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ConfigError(f"memory size {text!r} must be positive")
    return int(value)


@dataclass(frozen=True)
class DepthFit:
    """y = intercept + slope * layers, least squares over measured (layers, y) points."""

    intercept: float
    slope: float
    points: tuple[tuple[int, float], ...]

    def at(self, layers: float) -> float:
        return self.intercept + self.slope * layers

    @property
    def max_relative_residual(self) -> float:
        return max(abs(self.at(x) - y) / abs(y) if y else 0.0 for x, y in self.points)

    def to_dict(self) -> dict:
        return {"intercept": self.intercept, "per_layer": self.slope, "points": [list(p) for p in self.points],
                "max_relative_residual": self.max_relative_residual}


def fit_depth(points: Sequence[tuple[int, float]]) -> DepthFit:
    """Least-squares line through (layers, value) points (at least two distinct depths)."""
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    if len(set(xs)) < 2:
        raise ConfigError("a depth fit needs measurements at two or more depths")
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return DepthFit(my - slope * mx, slope, tuple((int(x), y) for x, y in zip(xs, ys)))


@dataclass(frozen=True)
class BatchLine:
    """Bytes a step needs above the resident weights at batch b: fixed + per_sample * b."""

    fixed: float
    per_sample: float

    def at(self, batch: int) -> float:
        return self.fixed + self.per_sample * batch


def batch_line(b0: int, peak0: float, peak1: float) -> BatchLine:
    """From peaks measured at batches b0 and b0 + 1."""
    per = peak1 - peak0
    return BatchLine(peak0 - per * b0, per)


def largest_batch(resident: float, line: BatchLine, usable: float, minimum: int = 1, cap: int = 4096) -> int:
    """Largest per-device batch b >= minimum with resident + line.at(b) <= usable; 0 when not even `minimum` fits."""
    if resident + line.at(minimum) > usable:
        return 0
    if line.per_sample <= 0:
        return cap
    return int(min(cap, math.floor((usable - resident - line.fixed) / line.per_sample)))


def grad_accumulation(effective: int, batch: int) -> int:
    """Accumulation steps that reach at least `effective` samples per optimiser step at `batch` per step."""
    return math.ceil(effective / batch) if batch > 0 else 0


def kv_cache_bytes(layer_types: Sequence[str], kv_heads: int, head_dim: int, sliding_window: int, tokens: int,
                   batch: int, bytes_per: int = 2) -> int:
    """Key + value cache of a Gemma-3 decoder after `tokens` positions: global layers keep every position,
    sliding-window layers at most `sliding_window`."""
    per_token = 2 * kv_heads * head_dim * bytes_per * batch
    return sum(per_token * (tokens if t == "full_attention" else min(tokens, sliding_window)) for t in layer_types)


def decode_flops(matmul_params: int, layer_types: Sequence[str], heads: int, head_dim: int, sliding_window: int,
                 context: int) -> int:
    """FLOPs of one decoding step of one sequence: 2 per weight of every matmul (LM head included) plus the
    attention of the new token over its context (scores and weighted sum, 4 * heads * head_dim per position)."""
    attention = sum(4 * heads * head_dim * (context if t == "full_attention" else min(context, sliding_window))
                    for t in layer_types)
    return 2 * matmul_params + attention


def human(nbytes: float) -> str:
    """Bytes as GiB with two decimals (MiB below 1 GiB)."""
    return f"{nbytes / GiB:.2f} GiB" if abs(nbytes) >= GiB else f"{nbytes / 2**20:.0f} MiB"
