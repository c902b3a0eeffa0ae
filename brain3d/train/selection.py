"""A validation score of *grounding*, to choose a phase's best state by what the report says, not by its wording.

Validation loss is mostly wording: phase 2A's stops after 2-3 epochs while the side is still a coin toss. This score
asks whether the model's teacher-forced loss prefers the right report for a scan, in pairs that differ only in a fact
the image decides (one forward pass per scan and text, no generation):

  side      a one-sided lesion's report against the same text with left and right swapped, on its scan;
  presence  a lesion subject and a healthy one: the two reports on their own scans against the swapped assignment;
  findings  two lesions on the same side whose findings (edema, necrosis, enhancement, compression) differ: the two
            reports on their own scans against the swapped assignment.

Comparing assignments (L(a|x_a) + L(b|x_b) < L(a|x_b) + L(b|x_a)) rather than two texts on one scan cancels how
likely each text is on its own: a normal-study template is easy to predict whatever the scan, so "true report beats
normal report" would measure the templates, not the image. The score is the mean, over the kinds that exist, of the
share of pairs won; a model that ignores its image scores 0.5 on the side and can win no assignment pair.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from brain3d.data.dataset import swap_sides
from brain3d.data.manifest import Record
from brain3d.vocabulary import FINDINGS

KINDS = ("side", "presence", "findings")


def pairs_of(records: Sequence[Record]) -> list[tuple[str, int, int | None]]:
    """(kind, i, j) for every comparison: side pairs have j None (the twin is the swapped text of record i)."""
    lesions = [i for i, r in enumerate(records) if not r.healthy and r.truth is not None]
    healthy = [i for i, r in enumerate(records) if r.healthy]
    out: list[tuple[str, int, int | None]] = []
    for n, i in enumerate(lesions):
        r = records[i]
        if r.truth.side in ("left", "right"):
            out.append(("side", i, None))
        if healthy:
            out.append(("presence", i, healthy[n % len(healthy)]))
        mine = {f: bool(r.truth.findings.get(f, False)) for f in FINDINGS}
        other = next((j for j in lesions[n + 1:] if records[j].truth.side == r.truth.side
                      and {f: bool(records[j].truth.findings.get(f, False)) for f in FINDINGS} != mine), None)
        if other is not None:
            out.append(("findings", i, other))
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
    """{"score", "side", "presence", "findings", "pairs"}: share of pairs won per kind and their mean."""
    pairs = pairs_of(records)
    if not pairs:
        return {"score": None, **{k: None for k in KINDS}, "pairs": 0}
    needed: dict[tuple[int, str], None] = {}  # (scan index, text) -> loss, in first-seen order
    for kind, i, j in pairs:
        if j is None:
            needed[(i, records[i].report)] = needed[(i, swap_sides(records[i].report))] = None
        else:
            for scan in (i, j):
                needed[(scan, records[i].report)] = needed[(scan, records[j].report)] = None
    keys = list(needed)
    losses: dict[tuple[int, str], float] = {}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(keys), batch_size):
            chunk = keys[start:start + batch_size]
            x = torch.stack([source(records[i], False) for i, _ in chunk]).to(model.device)
            values = sequence_losses(model, [t for _, t in chunk], {inputs: x})
            losses.update(zip(chunk, values.tolist()))
    finally:
        model.train(was_training)
    wins: dict[str, list[bool]] = {k: [] for k in KINDS}
    for kind, i, j in pairs:
        a = records[i].report
        if j is None:
            wins[kind].append(losses[(i, a)] < losses[(i, swap_sides(a))])
        else:
            b = records[j].report
            wins[kind].append(losses[(i, a)] + losses[(j, b)] < losses[(j, a)] + losses[(i, b)])
    shares = {k: (sum(v) / len(v) if v else None) for k, v in wins.items()}
    present = [v for v in shares.values() if v is not None]
    return {"score": sum(present) / len(present), **shares, "pairs": len(pairs)}
