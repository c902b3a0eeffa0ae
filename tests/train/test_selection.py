"""The validation grounding score: which twins are compared, and the share of pairs a model wins."""

from __future__ import annotations

import torch

from brain3d.data.manifest import Record, Truth
from brain3d.train import selection


def _records() -> list[Record]:
    f1 = {"edema": True, "necrosis": True, "enhancement": False, "compression": False}
    f2 = {"edema": True, "necrosis": False, "enhancement": False, "compression": False}
    return [
        Record(id="a", images={"flair": "a"}, report="Left frontal lesion with necrosis.", truth=Truth(side="left", findings=f1)),
        Record(id="b", images={"flair": "b"}, report="Left parietal lesion, no necrosis.", truth=Truth(side="left", findings=f2)),
        Record(id="c", images={"flair": "c"}, report="Bilateral lesion.", truth=Truth(side="bilateral", findings=f1)),
        Record(id="h", images={"flair": "h"}, report="Normal brain MRI.", healthy=True),
    ]


def test_twins_cover_side_presence_and_findings():
    recs = _records()
    pairs = selection.twins(recs)
    kinds = {(recs[i].id, k) for i, k, _ in pairs}
    assert kinds == {("a", "side"), ("a", "presence"), ("a", "findings"), ("b", "side"), ("b", "presence"),
                     ("b", "findings"), ("c", "presence"), ("h", "presence")}
    twin = {(recs[i].id, k): t for i, k, t in pairs}
    assert twin[("a", "side")] == "Right frontal lesion with necrosis."
    assert twin[("a", "findings")] == recs[1].report  # same side, other findings
    assert "lesion" in twin[("h", "presence")].lower()  # a healthy subject meets a lesion report


def test_grounding_score_counts_pairs_won(monkeypatch):
    recs = _records()
    # the batch holds the true reports, then their twins: a "model" with the lower loss on the first half wins all
    half = lambda reports, first: torch.tensor([first] * (len(reports) // 2) + [1 - first] * (len(reports) // 2))  # noqa: E731
    monkeypatch.setattr(selection, "sequence_losses", lambda model, reports, inputs: half(reports, 0.0))

    class Model(torch.nn.Module):
        device = torch.device("cpu")

    source = lambda rec, mirrored: torch.zeros(2, 3)  # noqa: E731
    out = selection.grounding_score(Model(), recs, source, "features", batch_size=3)
    assert out == {"score": 1.0, "side": 1.0, "presence": 1.0, "findings": 1.0, "pairs": 8}
    # and a model that always prefers the twin loses every pair
    monkeypatch.setattr(selection, "sequence_losses", lambda model, reports, inputs: half(reports, 1.0))
    assert selection.grounding_score(Model(), recs, source, "features")["score"] == 0.0
