"""Training losses: phase 1's symmetric InfoNCE between volume and report embeddings, and the phase-2
report loss with clinical keyword tokens weighted up.

Identical reports (two healthy subjects can share one) are not negatives of each other: every column with
the same text id as the row's report counts as a positive. A batch in which no volume has a negative
(one volume, or every report the same with no bank) is refused: the loss would be identically zero, which
is the reference code's silent failure at batch size 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brain3d.errors import TrainingError


def symmetric_info_nce(
    volume_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_ids: torch.Tensor,
    temperature: float = 0.07,
    bank: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of the volume→text and text→volume InfoNCE losses.

    volume_emb (B, d): one embedding per volume. text_emb (B, d): the embedding of each volume's report.
    text_ids (B,): an id per distinct report text (equal ids = identical reports; with a bank, the row of
    that report in the bank). bank (M, d), optional: embeddings of every distinct report of the data set;
    then volume→text contrasts each volume against the whole bank instead of the batch's reports.
    """
    b = volume_emb.shape[0]
    if b < 2:
        raise TrainingError(
            f"phase 1 got a batch of {b} volume: contrastive (InfoNCE) training needs at least 2 volumes per batch "
            "and process, because with one volume the loss has no negatives and is identically zero"
        )
    v = F.normalize(volume_emb.float(), dim=-1)  # (B, d)
    t = F.normalize(text_emb.float(), dim=-1)  # (B, d)
    same = text_ids[:, None] == text_ids[None, :]  # (B, B) positives of each row
    if bank is None:
        if bool(same.all()):
            raise TrainingError(
                "phase 1 got a batch whose reports are all identical: InfoNCE has no negatives; "
                "shuffle the data, use a larger batch or contrast against the report bank (phases.1.bank: true)"
            )
        v2t = _multi_positive_ce(v @ t.T / temperature, same)  # (B,)
    else:
        bank = F.normalize(bank.float(), dim=-1)  # (M, d)
        if bank.shape[0] < 2:
            raise TrainingError("phase 1 report bank holds a single report: InfoNCE has no negatives")
        v2t = F.cross_entropy(v @ bank.T / temperature, text_ids.long(), reduction="none")  # (B,)
    t2v = _multi_positive_ce(t @ v.T / temperature, same)  # (B,)
    return 0.5 * (v2t.mean() + t2v.mean())


def _multi_positive_ce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """-log(sum of softmax over the positive columns) per row; (B, C) logits, (B, C) bool mask -> (B,)."""
    pos = logits.masked_fill(~positive, float("-inf"))
    return torch.logsumexp(logits, dim=-1) - torch.logsumexp(pos, dim=-1)


def weighted_lm_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token loss sum(w * ce) / sum(w), with (B, T) weights aligned with `labels` (0 where ignored).

    logits (B, T, V) and labels (B, T) as the causal LM sees them: position t predicts label t + 1. Weights
    of 1 on every labelled token give exactly the LM's own mean loss."""
    target = labels[:, 1:]  # (B, T-1)
    ce = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, ignore_index=-100, reduction="none")  # (B, T-1)
    w = weights[:, 1:]  # (B, T-1)
    return (ce * w).sum() / w.sum().clamp_min(1e-8)
