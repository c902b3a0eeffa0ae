"""Clinical set F1 (the reference scorer's semantics), worked by hand."""

from __future__ import annotations

import pytest

from brain3d.eval import clinical
from brain3d.eval.clinical import f1


# ---------------------------------------------------------------- F1
@pytest.mark.parametrize("ref, hyp, expected", [
    (set(), set(), 1.0),             # empty reference, empty output
    (set(), {"left"}, 0.0),          # empty reference, anything output
    ({"left"}, set(), 0.0),
    ({"left"}, {"left"}, 1.0),
    ({"left"}, {"right"}, 0.0),
    ({"left", "right"}, {"left"}, 2 / 3),                     # P=1, R=1/2
    ({"edema", "necrosis"}, {"edema", "mass", "lesion"}, 0.4),  # P=1/3, R=1/2 -> 2/5
])
def test_set_f1(ref, hyp, expected):
    assert f1(ref, hyp) == pytest.approx(expected)


def test_sample_f1_parity_vs_extended_on_negation():
    ref = "Left frontal lesion with edema. No necrosis."
    hyp = "Left frontal lesion with edema and necrosis."
    parity = clinical.sample_f1(ref, hyp, "parity")
    ext = clinical.sample_f1(ref, hyp, "extended")
    assert parity == {"laterality": 1.0, "anatomy": 1.0, "pathology": 1.0}  # blind to the negation
    assert ext["pathology"] == pytest.approx(0.8)  # ref {lesion, edema}, hyp {lesion, edema, necrosis}
