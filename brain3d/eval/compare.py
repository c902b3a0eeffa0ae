"""Paired comparison of two scored systems on the subjects both scored (matched by id)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brain3d.eval import stats, tables
from brain3d.eval.scoring import METRIC_COLUMNS, PredictionsError, read_per_sample


def compare_dirs(dir_a: str | Path, dir_b: str | Path, n_boot: int = stats.N_BOOT, seed: int = stats.SEED) -> dict:
    """Paired bootstrap of (A - B) for every metric both folders have, over their shared subject ids."""
    a, b = read_per_sample(dir_a), read_per_sample(dir_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise PredictionsError(f"no subject id in common with {dir_b}", dir_a)
    out: dict = {"a": str(dir_a), "b": str(dir_b), "n_shared": len(shared),
                 "only_a": len(set(a) - set(b)), "only_b": len(set(b) - set(a)), "n_boot": n_boot, "seed": seed,
                 "p_value": "two-sided, bootstrap distribution shifted to zero mean difference", "metrics": {}}
    for key in METRIC_COLUMNS:
        va = np.array([a[i].get(key, np.nan) for i in shared])
        vb = np.array([b[i].get(key, np.nan) for i in shared])
        if np.isnan(va).all() or np.isnan(vb).all():
            continue
        out["metrics"][key] = stats.paired_bootstrap(va, vb, n_boot, seed).to_dict()
    return out


def comparison_markdown(result: dict) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}",
             f"{result['n_shared']} shared subjects (only in A: {result['only_a']}, only in B: {result['only_b']})",
             "", "| metric | A | B | A − B [95% CI] | p | n |", "|---|---|---|---|---|---|"]
    for key, d in result["metrics"].items():
        lines.append(f"| {tables.LABELS.get(key, key)} | {tables.fmt(d['mean_a'])} | {tables.fmt(d['mean_b'])} | "
                     f"{tables.fmt(d['diff'])} [{tables.fmt(d['lo'])}, {tables.fmt(d['hi'])}] | "
                     f"{d['p']:.3f} | {d['n']} |")
    return "\n".join(lines) + "\n"
