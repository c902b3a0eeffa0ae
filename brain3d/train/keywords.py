"""Which report tokens spell a clinical keyword, for the keyword-weighted report loss.

A report is ~60 tokens of which the side, the lobes, the findings and "normal" are a handful: under the plain
mean next-token loss, the word that makes a report right or wrong (the side) is ~1 % of the loss, and a model
that always writes "left" loses almost nothing. Weighting these tokens up makes reading the image pay.

A word is a keyword when the evaluation's extended scorer reads it as one (`vocabulary.canonical`: every
variant, e.g. "oedema", "enhancing", "fronto" of "fronto-parietal"), or it is "normal" / "abnormal" or a
negation ("no", "not", "without"), so the loss weights what the metrics score. Tokens are matched by
character offsets, so a keyword that the tokenizer splits into pieces is weighted in every piece, and no
piece is weighted for being part of some other word.
"""

from __future__ import annotations

import re

import torch

from brain3d.errors import ConfigError
from brain3d.vocabulary import canonical

EXTRA_KEYWORDS = ("normal", "abnormal", "no", "not", "without")  # negations decide findings too
_WORD = re.compile(r"[A-Za-z]+")


def keyword_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the keyword words of `text`."""
    return [m.span() for m in _WORD.finditer(text)
            if m.group().lower() in EXTRA_KEYWORDS or canonical(m.group().lower())]


def keyword_positions(tokenizer, reports: list[str], max_tokens: int) -> list[list[bool]]:
    """Per report, one flag per token of `prompt.report_ids` (report tokens, then the end id, truncated to
    `max_tokens`): True where the token overlaps a keyword word. Needs a fast tokenizer (offsets)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"keyword_weight needs a fast tokenizer (character offsets); {type(tokenizer).__name__} is not one")
    enc = tokenizer(list(reports), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for text, offsets in zip(reports, enc["offset_mapping"]):
        spans = keyword_spans(text)
        flags = [any(s < e0 and s0 < e for s0, e0 in spans) for s, e in offsets] + [False]  # + end id
        out.append(flags[:max_tokens])
    return out


def keyword_weights(labels: torch.Tensor, positions: list[list[bool]], weight: float) -> torch.Tensor:
    """(B, T) loss weight of each label: `weight` on keyword tokens, 1 on other report tokens, 0 where the
    label is -100. The report tokens of row i are its non-ignored labels, in order."""
    valid = labels != -100  # (B, T)
    counts = valid.sum(dim=1).tolist()
    if counts != [len(p) for p in positions]:
        raise ValueError(f"report token counts {counts} do not match the labels' {[len(p) for p in positions]}")
    flags = torch.tensor([f for p in positions for f in p], dtype=torch.bool, device=labels.device)
    w = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    w[valid] = torch.where(flags, float(weight), 1.0)  # boolean indexing walks row by row
    return w
