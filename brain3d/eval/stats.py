"""Bootstrap statistics over subjects: percentile CI of a mean and the paired comparison of two systems.

Pure numpy. Resampling is over subjects with a seeded generator, so the same seed and the same number of
subjects draw the same resamples for every metric (all columns of a table share one set of resamples).
NaN marks "not applicable to this subject" (e.g. healthy specificity of a tumour case) and is dropped first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 1000
SEED = 42
_CHUNK = 200  # resamples drawn at a time, so memory stays O(chunk * n)


@dataclass(frozen=True)
class Interval:
    """A mean with its percentile-bootstrap confidence interval over `n` subjects."""

    mean: float
    lo: float
    hi: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedDiff:
    """Mean of (a - b) over shared subjects, its bootstrap CI and a two-sided bootstrap p-value."""

    diff: float
    lo: float
    hi: float
    p: float
    n: int
    mean_a: float
    mean_b: float

    def to_dict(self) -> dict:
        return asdict(self)


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[~np.isnan(x)]


def bootstrap_means(values, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement, same size) of the non-NaN values; shape (n_boot,)."""
    x = _finite(values)
    if x.size == 0:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        k = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, x.size, size=(k, x.size))  # (k, n)
        out[start:start + k] = x[idx].mean(axis=1)
    return out


def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = SEED, level: float = 0.95) -> Interval:
    """Percentile bootstrap CI of the mean of the non-NaN values (NaN interval when there are none)."""
    x = _finite(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    means = bootstrap_means(x, n_boot, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return Interval(float(x.mean()), float(lo), float(hi), int(x.size))


def paired_bootstrap(a, b, n_boot: int = N_BOOT, seed: int = SEED, level: float = 0.95) -> PairedDiff:
    """Paired bootstrap of mean(a - b) over subjects where both are defined.

    The p-value is two-sided, from the bootstrap distribution shifted to the null (mean difference 0):
    p = (1 + #{|d* - d| >= |d|}) / (n_boot + 1).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    if d.size == 0:
        return PairedDiff(math.nan, math.nan, math.nan, math.nan, 0, math.nan, math.nan)
    observed = float(d.mean())
    means = bootstrap_means(d, n_boot, seed)
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    extreme = int(np.sum(np.abs(means - observed) >= abs(observed) - 1e-12))
    p = (1 + extreme) / (n_boot + 1) if observed != 0.0 else 1.0
    return PairedDiff(observed, float(lo), float(hi), float(min(1.0, p)), int(d.size),
                      float(a[keep].mean()), float(b[keep].mean()))
