"""Diagnostics a reviewer asks for: output diversity, template collapse and the left-right mirror test."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

_OPPOSITE = {"left": "right", "right": "left", "bilateral": "bilateral", None: None}


def _tokens(text: str) -> list[str]:
    return (text or "").lower().split()


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the whole set of outputs (lowercased whitespace tokens).

    0 when no output has n tokens. 1.0 means no n-gram repeats anywhere; a model that writes one template
    for every subject scores about 1 / number of subjects.
    """
    grams: list[tuple[str, ...]] = []
    for t in texts:
        toks = _tokens(t)
        grams.extend(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def top_output_share(texts: Sequence[str]) -> tuple[float, str]:
    """Share of outputs identical (after whitespace/case normalisation) to the most common output, and that output."""
    if not texts:
        return 0.0, ""
    norm = [" ".join(_tokens(t)) for t in texts]
    text, count = Counter(norm).most_common(1)[0]
    return count / len(norm), text


def diversity(texts: Sequence[str]) -> dict:
    """distinct-1/2/3, unique-output share and the most-common-output share of a set of reports."""
    share, top = top_output_share(texts)
    unique = len({" ".join(_tokens(t)) for t in texts})
    return {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "unique_outputs": unique / len(texts) if texts else 0.0,
        "top_output_share": share,
        "top_output": top,
    }


def mirrored_side(side: str | None) -> str | None:
    """The side a correct report names for the left-right mirror of a scan whose report names `side`."""
    return _OPPOSITE.get(side)


def mirror_test(original: Sequence[str | None], mirrored: Sequence[str | None]) -> dict:
    """How often a left-right mirrored volume makes the model report the mirrored side.

    `original[i]` and `mirrored[i]` are the sides reported for subject i's volume and its mirror
    ('left' | 'right' | 'bilateral' | None). The expected mirror of left is right and vice versa;
    bilateral and None mirror to themselves.

    - ``flip_rate``: among pairs whose original report is lateralised (left/right), the share whose mirror
      report names the opposite side. A mirror answer of the same side, bilateral or None is a failure.
      This is the number that shows whether the model reads laterality from the image at all.
    - ``same_side_rate``: among those pairs, the share that repeats the original side (side ignored the image).
    - ``bilateral_kept``: among bilateral originals, the share still bilateral after mirroring.
    - ``consistency``: over all pairs, the share whose mirror answer equals the expected mirror.
    - ``n_lateralised``, ``n_bilateral``, ``n_none``: the denominators.
    """
    if len(original) != len(mirrored):
        raise ValueError(f"mirror test needs paired answers: {len(original)} originals vs {len(mirrored)} mirrors")
    lat = [(o, m) for o, m in zip(original, mirrored) if o in ("left", "right")]
    bil = [(o, m) for o, m in zip(original, mirrored) if o == "bilateral"]
    none = [(o, m) for o, m in zip(original, mirrored) if o is None]
    consistent = sum(1 for o, m in zip(original, mirrored) if m == _OPPOSITE.get(o, None))

    def rate(k: int, n: int) -> float | None:
        return k / n if n else None

    return {
        "flip_rate": rate(sum(1 for o, m in lat if m == _OPPOSITE[o]), len(lat)),
        "same_side_rate": rate(sum(1 for o, m in lat if m == o), len(lat)),
        "bilateral_kept": rate(sum(1 for _, m in bil if m == "bilateral"), len(bil)),
        "consistency": rate(consistent, len(original)),
        "n_lateralised": len(lat),
        "n_bilateral": len(bil),
        "n_none": len(none),
    }
