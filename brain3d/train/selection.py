"""A validation score of *grounding*, to choose a phase's best state by what the report says, not by its wording.

Validation loss is mostly wording: phase 2A's stops after 2-3 epochs while the side is still a coin toss. This score
asks, per validation subject, whether the model prefers its true report to twins that differ only in a fact the image
decides, by teacher-forced loss (one forward pass per twin, no generation):

  side      a one-sided lesion's report against the same text with left and right swapped;
  presence  a lesion's report against a normal-study report (`vocabulary.normal_report`), and a healthy subject's
            report against a lesion report of the same validation set;
  findings  a lesion's report against the report of another validation lesion on the same side whose findings
            (edema, necrosis, enhancement, compression) differ — the closest text the set holds that changes the
            findings (its lobes may differ too).

The score is the mean, over the three kinds that exist, of the share of pairs won (loss of the truth lower). A model
that ignores its image scores 0.5 on the side (the twins are equally likely a priori).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from brain3d.data.dataset import swap_sides
from brain3d.data.manifest import Record
from brain3d.vocabulary import FINDINGS, normal_report

KINDS = ("side", "presence", "findings")


def twins(records: Sequence[Record]) -> list[tuple[int, str, str]]:
    """(record index, kind, twin report) for every pair the score compares (deterministic in the records)."""
    lesions = [i for i, r in enumerate(records) if not r.healthy and r.truth is not None]
    out: list[tuple[int, str, str]] = []
    for i, r in enumerate(records):
        if r.healthy:
            if lesions:
                out.append((i, "presence", records[lesions[i % len(lesions)]].report))
            continue
        if r.truth is None:
            continue
        if r.truth.side in ("left", "right"):
            out.append((i, "side", swap_sides(r.report)))
        out.append((i, "presence", normal_report(r.id)))
        mine = {f: bool(r.truth.findings.get(f, False)) for f in FINDINGS}
        other = next((j for j in lesions if j != i and records[j].truth.side == r.truth.side
                      and {f: bool(records[j].truth.findings.get(f, False)) for f in FINDINGS} != mine), None)
        if other is not None:
            out.append((i, "findings", records[other].report))
    return out


@torch.no_grad()
def sequence_losses(model, reports: list[str], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B,) mean teacher-forced loss of each report over its own tokens."""
    out = model(reports, **inputs)
    logits, labels = out.logits[:, :-1].float(), out.labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (B, T-1)
    n = (labels != -100).sum(dim=1).clamp_min(1)
    return ce.sum(dim=1) / n


@torch.no_grad()
def grounding_score(model, records: Sequence[Record], source: Callable[[Record, bool], torch.Tensor], inputs: str,
                    batch_size: int = 16) -> dict:
    """{"score", "side", "presence", "findings", "pairs"}: share of twin pairs won per kind and their mean."""
    pairs = twins(records)
    if not pairs:
        return {"score": None, **{k: None for k in KINDS}, "pairs": 0}
    was_training = model.training
    model.eval()
    wins: dict[str, list[bool]] = {k: [] for k in KINDS}
    try:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            x = torch.stack([source(records[i], False) for i, _, _ in chunk]).to(model.device)
            x = torch.cat([x, x])  # (2b, ...): the true reports, then their twins
            reports = [records[i].report for i, _, _ in chunk] + [t for _, _, t in chunk]
            loss = sequence_losses(model, reports, {inputs: x})
            b = len(chunk)
            for (_, kind, _), truth, twin in zip(chunk, loss[:b].tolist(), loss[b:].tolist()):
                wins[kind].append(truth < twin)
    finally:
        model.train(was_training)
    shares = {k: (sum(v) / len(v) if v else None) for k, v in wins.items()}
    present = [s for s in shares.values() if s is not None]
    return {"score": sum(present) / len(present), **shares, "pairs": len(pairs)}
