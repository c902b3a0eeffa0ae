"""Structured findings read from report text: the targets of the optional findings head in phase 1.

Labels come from the extended (negation-aware) extractor of the evaluation, so they are exactly what the
metrics score and need no annotation beyond the report: the method works on TextBraTS as on phantoms. A
mirrored training item has its report's sides swapped by the dataset, so its labels follow the mirror.
"""

from __future__ import annotations

from typing import Sequence

import torch

from brain3d.vocabulary import extract_extended
from brain3d.model.brain3d import FINDING_LABELS


def report_labels(reports: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, len(FINDING_LABELS)) float 0/1: 'lesion' when any pathology is asserted, 'normal' when none is, then
    each side, lobe and finding keyword the report asserts ('bilateral' asserts both sides)."""
    rows = []
    for text in reports:
        found = extract_extended(text)
        asserted = found["laterality"] | found["anatomy"] | found["pathology"]
        abnormal = bool(found["pathology"])
        rows.append([float(abnormal), float(not abnormal)] + [float(w in asserted) for w in FINDING_LABELS[2:]])
    return torch.tensor(rows, dtype=torch.float32, device=device)
