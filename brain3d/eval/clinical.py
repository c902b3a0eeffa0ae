"""Clinical keyword F1 for laterality, anatomy and pathology: the reference scorer's set F1 over the keyword sets
that `brain3d.vocabulary` extracts (`parity`, bug for bug, or `extended`, negation-aware)."""

from __future__ import annotations

from brain3d.vocabulary import CATEGORIES, extract


def f1(ref: set, hyp: set) -> float:
    """Set F1; an empty reference scores 1 when the output is empty too, else 0 (reference semantics)."""
    if not ref:
        return 1.0 if not hyp else 0.0
    tp = len(ref & hyp)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(hyp), tp / len(ref)
    return 2 * precision * recall / (precision + recall)


def sample_f1(reference: str, generated: str, mode: str = "parity") -> dict[str, float]:
    """Per-category F1 of one generated report against its reference."""
    ref, hyp = extract(reference, mode), extract(generated, mode)
    return {cat: f1(ref[cat], hyp[cat]) for cat in CATEGORIES}
