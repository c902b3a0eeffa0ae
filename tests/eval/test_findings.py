"""Per-finding scores worked by hand: balanced accuracy is 0.5 for a constant answer, whatever the prevalence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brain3d.eval.findings import balanced_accuracy, finding_scores


def test_balanced_accuracy_by_hand():
    truth = np.array([True, True, True, False])
    assert balanced_accuracy(truth, np.array([True, True, True, True])) == 0.5  # always "present": 1 and 0
    assert balanced_accuracy(truth, np.array([True, False, True, False])) == pytest.approx(0.5 * (2 / 3 + 1))
    assert math.isnan(balanced_accuracy(np.array([True, True]), np.array([True, False])))


def test_finding_scores_against_truth():
    truths = [{"edema": True, "necrosis": True}, {"edema": True, "necrosis": False}, {"edema": True, "necrosis": False},
              {"edema": False, "necrosis": True}, {"necrosis": False}]
    said = [{"edema": True, "necrosis": True}, {"edema": True, "necrosis": True}, {"edema": True, "necrosis": False},
            {"edema": True, "necrosis": True}, {"edema": True, "necrosis": False}]
    out = finding_scores(truths, said, ["edema", "necrosis", "compression"], n_boot=200)
    assert set(out) == {"edema", "necrosis"}  # no subject names compression
    edema, necrosis = out["edema"], out["necrosis"]
    assert edema["n"] == 4 and edema["prevalence"] == 0.75
    assert edema["accuracy"]["mean"] == 0.75 and edema["balanced_accuracy"]["mean"] == 0.5
    assert necrosis["n"] == 5 and necrosis["sensitivity"]["mean"] == 1.0
    assert necrosis["specificity"]["mean"] == pytest.approx(2 / 3)
    assert necrosis["balanced_accuracy"]["mean"] == pytest.approx(5 / 6)
    lo, hi = necrosis["balanced_accuracy"]["lo"], necrosis["balanced_accuracy"]["hi"]
    assert lo <= 5 / 6 <= hi and lo < hi
