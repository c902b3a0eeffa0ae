"""Per-finding scores of generated reports against the subjects' true findings: prevalence, accuracy, sensitivity,
specificity and balanced accuracy, each with a percentile-bootstrap 95% CI over subjects.

Plain accuracy flatters a finding that almost every lesion has (edema: a writer that always says "edema" scores its
prevalence); balanced accuracy, the mean of sensitivity and specificity, is the measure prevalence cannot game (0.5
for any constant answer). Scored over the lesion subjects whose truth names the finding; a finding the report does
not assert counts as absent (negation-aware extraction, `vocabulary.findings_of`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from brain3d.eval.stats import N_BOOT, SEED, Interval, bootstrap_ci


def balanced_accuracy(truth: np.ndarray, said: np.ndarray) -> float:
    """Mean of sensitivity and specificity of boolean `said` against boolean `truth`; NaN without both classes."""
    pos, neg = truth.sum(), (~truth).sum()
    if pos == 0 or neg == 0:
        return math.nan
    return 0.5 * (float((said & truth).sum()) / pos + float((~said & ~truth).sum()) / neg)


def _bootstrap_ba(truth: np.ndarray, said: np.ndarray, n_boot: int, seed: int, level: float) -> Interval:
    """Percentile bootstrap of balanced accuracy, resampling subjects (resamples missing a class are skipped)."""
    value = balanced_accuracy(truth, said)
    if math.isnan(value):
        return Interval(math.nan, math.nan, math.nan, int(truth.size))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, truth.size, size=(n_boot, truth.size))  # (n_boot, n)
    t, s = truth[idx], said[idx]
    pos, neg = t.sum(1), (~t).sum(1)
    ok = (pos > 0) & (neg > 0)
    ba = 0.5 * ((s & t).sum(1)[ok] / pos[ok] + (~s & ~t).sum(1)[ok] / neg[ok])
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(ba, [tail, 100.0 - tail])
    return Interval(value, float(lo), float(hi), int(truth.size))


def finding_scores(truths: Sequence[dict[str, bool]], said: Sequence[dict[str, bool]], findings: Sequence[str],
                   n_boot: int = N_BOOT, seed: int = SEED, level: float = 0.95) -> dict[str, dict]:
    """{finding: {n, prevalence, accuracy, sensitivity, specificity, balanced_accuracy}} over the subjects whose
    `truths` entry names the finding; every score but prevalence is an Interval dict (mean, lo, hi, n)."""
    out: dict[str, dict] = {}
    for f in findings:
        rows = [(bool(t[f]), bool(s.get(f, False))) for t, s in zip(truths, said) if f in t]
        if not rows:
            continue
        t = np.array([r[0] for r in rows])
        s = np.array([r[1] for r in rows])
        out[f] = {
            "n": int(t.size),
            "prevalence": float(t.mean()),
            "accuracy": bootstrap_ci((t == s).astype(float), n_boot, seed, level).to_dict(),
            "sensitivity": bootstrap_ci((s[t]).astype(float), n_boot, seed, level).to_dict(),
            "specificity": bootstrap_ci((~s[~t]).astype(float), n_boot, seed, level).to_dict(),
            "balanced_accuracy": _bootstrap_ba(t, s, n_boot, seed, level).to_dict(),
        }
    return out
