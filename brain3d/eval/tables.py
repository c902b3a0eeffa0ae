"""Metric columns and Markdown tables in the paper's layout (Table I: one row per system)."""

from __future__ import annotations

import math
from typing import Mapping

# (key, column label) in the paper's Table I order
PAPER_COLUMNS = (
    ("bleu1", "B-1"), ("bleu4", "B-4"), ("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeL", "R-L"),
    ("meteor", "METEOR"), ("bertscore", "BERTScore"), ("cider", "CIDEr"),
    ("lat_f1", "Lat-F1"), ("anat_f1", "Anat-F1"), ("path_f1", "Path-F1"),
)
EXTENDED_COLUMNS = (("lat_f1_ext", "Lat-F1 ext"), ("anat_f1_ext", "Anat-F1 ext"), ("path_f1_ext", "Path-F1 ext"))
TRUTH_COLUMNS = (
    ("side_acc_truth", "Side acc"), ("lat_f1_truth", "Lat-F1 truth"), ("lobe_f1_truth", "Lobe-F1 truth"),
    ("findings_acc_truth", "Findings acc"),
)
SCREEN_COLUMNS = (("healthy_specificity", "Healthy spec."), ("pathology_sensitivity", "Path. sens."))
ALL_COLUMNS = PAPER_COLUMNS + EXTENDED_COLUMNS + TRUTH_COLUMNS + SCREEN_COLUMNS
LABELS = dict(ALL_COLUMNS)


def fmt(x: float | None, digits: int = 3) -> str:
    """'.302'-style number as in the paper; '—' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{x:.{digits}f}"
    return s[1:] if s.startswith("0.") else ("-" + s[2:] if s.startswith("-0.") else s)


def cell(entry: Mapping | None, with_ci: bool = True) -> str:
    """'mean [lo, hi]' for a metric entry of metrics.json; 'n/a' when unavailable or never applicable."""
    if not entry or not entry.get("available", False) or entry.get("n", 0) == 0:
        return "n/a"
    if not with_ci:
        return fmt(entry["mean"])
    return f"{fmt(entry['mean'])} [{fmt(entry['lo'])}, {fmt(entry['hi'])}]"


def markdown_table(rows: Mapping[str, Mapping[str, Mapping]], columns=PAPER_COLUMNS, with_ci: bool = True,
                   first: str = "system", only_available: bool = False) -> str:
    """One Markdown table: `rows` maps a row name to {metric key: entry}; only columns some row has
    (with `only_available`, only columns some row could compute)."""
    def present(r: Mapping, k: str) -> bool:
        return k in r and (not only_available or bool(r[k].get("available")))

    cols = [(k, label) for k, label in columns if any(present(r, k) for r in rows.values())]
    if not cols:
        return ""
    head = f"| {first} | " + " | ".join(label for _, label in cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    body = [f"| {name} | " + " | ".join(cell(r.get(k), with_ci) for k, _ in cols) + " |" for name, r in rows.items()]
    return "\n".join([head, sep, *body])


def unavailable_notes(metrics: Mapping[str, Mapping]) -> list[str]:
    """'- METEOR unavailable: reason' lines for the metrics that could not be computed."""
    return [f"- {LABELS.get(k, k)} unavailable: {e.get('reason')}" for k, e in metrics.items()
            if not e.get("available", False) and e.get("reason")]
