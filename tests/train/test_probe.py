"""Linear probes of the compressed tokens read a planted side and presence, and only what is planted."""

from __future__ import annotations

import numpy as np
import torch

from brain3d.data.manifest import Record, Truth
from brain3d.train.probe import cv_accuracy, token_probes


def test_cv_accuracy_reads_a_planted_feature_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 40)
    noise = rng.normal(size=(80, 16))
    planted = noise.copy()
    planted[:, 3] += 3.0 * (2 * y - 1)
    assert cv_accuracy(planted, y) > 0.95
    assert cv_accuracy(noise, y) < 0.75
    assert cv_accuracy(noise[:6], y[:6]) is None  # fewer members per class than folds


class _Planted(torch.nn.Module):
    """`compressed` returns (B, K, dc) tokens whose channel 0 is the planted side and channel 1 the presence."""

    def compressed(self, features: torch.Tensor) -> torch.Tensor:
        return features


def test_token_probes_on_planted_tokens():
    rng = np.random.default_rng(1)
    records, rows = [], []
    for i in range(60):
        healthy = i % 3 == 0
        side = None if healthy else ("left" if i % 2 else "right")
        tokens = rng.normal(size=(4, 3)).astype(np.float32)  # (K, dc)
        tokens[:, 0] += {"left": 2.5, "right": -2.5, None: 0.0}[side]
        tokens[:, 1] += 0.0 if healthy else 2.5
        necrosis = not healthy and i % 5 < 2  # 40% of lesions, independent of the side
        tokens[:, 2] += 3.5 if necrosis else 0.0
        rows.append(tokens)
        findings = {"necrosis": necrosis, "edema": bool(i % 7 < 3)}  # edema is not planted
        records.append(Record(id=f"s{i}", images={"flair": "x.nii.gz"}, healthy=healthy,
                              truth=None if healthy else Truth(side=side, findings=findings)))
    lookup = {r.id: torch.from_numpy(t) for r, t in zip(records, rows)}
    model = _Planted().train()
    out = token_probes(model, records, lambda rs: torch.stack([lookup[r.id] for r in rs]), batch_size=7)
    assert model.training  # restored
    assert out["tokens"] == 12
    assert out["side"]["n"] == 40 and out["side"]["accuracy"] > 0.95
    assert out["presence"]["n"] == 60 and out["presence"]["accuracy"] > 0.95
    assert out["presence"]["majority"] == 40 / 60
    assert out["necrosis"]["n"] == 40 and out["necrosis"]["balanced_accuracy"] > 0.95
    assert out["edema"]["balanced_accuracy"] < 0.75  # nothing planted: near chance
    assert out["compression"] == {"balanced_accuracy": None, "n": 0, "prevalence": None}
