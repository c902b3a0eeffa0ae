"""Linear probes of what the compressed visual tokens carry: the vision half of grounding, measured alone.

If a cross-validated logistic regression cannot read the lesion's side (or its presence) from the K compressed
tokens, no language model downstream can write it; if it can, a failure to write it is the language half's
(see `brain3d.eval.grounding`, which measures the language half). Tokens are read *after* the compressor (and the projector's feature
standardiser when the model has one), i.e. exactly what the projector sees (`Brain3D.compressed`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from brain3d.data.manifest import Record
from brain3d.vocabulary import FINDINGS


def cv_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, scoring: str = "accuracy") -> float | None:
    """Stratified k-fold accuracy (or another sklearn `scoring`, e.g. balanced_accuracy) of an L2 logistic regression
    on standardised features; None when a class has fewer members than folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2 or counts.min() < folds:
        return None
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, x, y, cv=cv, scoring=scoring).mean())


@torch.no_grad()
def token_probes(model, records: Sequence[Record], features: Callable[[Sequence[Record]], torch.Tensor],
                 batch_size: int = 16, folds: int = 5) -> dict:
    """Cross-validated probe accuracies on the records' compressed tokens: `side` (left vs right, one-sided
    lesions) and `presence` (lesion vs healthy), with the class counts and the majority-class baseline; and for each
    finding of the lesion subjects' truth (edema, necrosis, enhancement, compression) its *balanced* accuracy (a
    finding most lesions have would flatter plain accuracy), with its prevalence.
    `features(records)` returns their (B, N, dv) encoder features (computed or cached)."""
    was_training = model.training
    model.eval()
    try:
        rows = [model.compressed(features(records[i:i + batch_size])).flatten(1).cpu()
                for i in range(0, len(records), batch_size)]
    finally:
        model.train(was_training)
    x = torch.cat(rows).numpy()  # (n, K * dc)
    out: dict = {"tokens": int(x.shape[1])}
    sided = [i for i, r in enumerate(records) if not r.healthy and r.truth is not None and r.truth.side in ("left", "right")]
    side_y = np.array([records[i].truth.side == "left" for i in sided], dtype=int)
    presence_y = np.array([not r.healthy for r in records], dtype=int)
    for name, idx, y in (("side", sided, side_y), ("presence", list(range(len(records))), presence_y)):
        out[name] = {"accuracy": cv_accuracy(x[idx], y, folds) if len(idx) else None, "n": len(idx),
                     "majority": float(max(y.mean(), 1 - y.mean())) if len(y) else None}
    lesions = [i for i, r in enumerate(records) if not r.healthy and r.truth is not None]
    for finding in FINDINGS:
        idx = [i for i in lesions if finding in records[i].truth.findings]
        y = np.array([bool(records[i].truth.findings[finding]) for i in idx], dtype=int)
        out[finding] = {"balanced_accuracy": cv_accuracy(x[idx], y, folds, scoring="balanced_accuracy") if len(idx) else None,
                        "n": len(idx), "prevalence": float(y.mean()) if len(y) else None}
    return out
