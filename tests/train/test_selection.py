"""The validation grounding score: which pairs are compared, and the share of pairs a model wins."""

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


def test_pairs_cover_side_presence_and_findings():
    assert selection.pairs_of(_records()) == [
        ("side", 0, None), ("presence", 0, 3), ("findings", 0, 1),
        ("side", 1, None), ("presence", 1, 3),
        ("presence", 2, 3),
    ]


class _Model(torch.nn.Module):
    device = torch.device("cpu")


def _scan(rec: Record, mirrored: bool) -> torch.Tensor:
    return torch.full((2, 3), float(ord(rec.id)))  # the scan names its subject


def _reading(monkeypatch, recs, reads_image: bool):
    """Loss 0 for the subject's own report on its scan when the model reads the image, else a loss that depends on the
    text alone (short texts and normal templates are easy)."""
    own = {float(ord(r.id)): r.report for r in recs}

    def losses(model, reports, inputs):
        ids = inputs["features"][:, 0, 0].tolist()
        if reads_image:
            return torch.tensor([0.0 if own[i] == t else 1.0 for i, t in zip(ids, reports)])
        return torch.tensor([len(t.replace("Right", "Left")) / 10.0 for t in reports])

    monkeypatch.setattr(selection, "sequence_losses", losses)


def test_a_model_that_reads_the_image_wins_every_pair(monkeypatch):
    recs = _records()
    _reading(monkeypatch, recs, reads_image=True)
    out = selection.grounding_score(_Model(), recs, _scan, "features", batch_size=3)
    assert out == {"score": 1.0, "side": 1.0, "presence": 1.0, "findings": 1.0, "pairs": 6}


def test_text_priors_alone_win_no_assignment_pair(monkeypatch):
    recs = _records()
    _reading(monkeypatch, recs, reads_image=False)
    out = selection.grounding_score(_Model(), recs, _scan, "features")
    assert out["presence"] == 0.0 and out["findings"] == 0.0  # an easy normal template wins nothing here
    assert out["side"] == 0.0  # "Left" and "Right" are as long: a tie is not a win
