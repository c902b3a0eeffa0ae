"""Prediction rows for scoring tests: synthetic TextBraTS-style references, noisy generated reports."""

from __future__ import annotations

import random

from brain3d.data.manifest import Truth
from brain3d.synth.reports import random_truth, write_report

_FLIP = {"left": "right", "right": "left", "bilateral": "bilateral", None: None}


def prediction_rows(n: int, seed: int = 0, healthy_share: float = 0.2, flip_share: float = 0.15) -> list[dict]:
    """`n` rows with truth; generated reports paraphrase the truth, a share with the side flipped."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sid = f"s{seed}-{i:04d}"
        if rng.random() < healthy_share:
            truth, healthy = Truth(), True
            gen_truth = truth
        else:
            truth, healthy = random_truth(rng), False
            side = _FLIP[truth.side] if rng.random() < flip_share else truth.side
            gen_truth = truth.model_copy(update={"side": side})
        rows.append({
            "id": sid,
            "reference": write_report(truth, healthy, sid, seed),
            "generated": write_report(gen_truth, healthy, sid + "-gen", seed + 1),
            "healthy": healthy,
            "truth": truth.model_dump(),
        })
    return rows
