"""Diversity, template collapse and the mirror test, worked by hand."""

from __future__ import annotations

import pytest

from brain3d.eval.diagnostics import distinct_n, diversity, mirror_test, top_output_share


def test_distinct_n():
    texts = ["a b a", "a b c"]
    # unigrams: a b a a b c -> {a,b,c} 3/6 ; bigrams: ab ba ab bc -> 3/4
    assert distinct_n(texts, 1) == pytest.approx(0.5)
    assert distinct_n(texts, 2) == pytest.approx(0.75)
    assert distinct_n(["a"], 2) == 0.0


def test_template_collapse():
    texts = ["No lesion.", "no  lesion.", "Left mass.", "NO LESION."]
    share, top = top_output_share(texts)
    assert share == 0.75 and top == "no lesion."
    d = diversity(texts)
    assert d["top_output_share"] == 0.75 and d["unique_outputs"] == 0.5


def test_mirror_test_counts():
    orig = ["left", "left", "right", "right", "bilateral", "bilateral", None, "left"]
    mirr = ["right", "left", "left", None, "bilateral", "left", None, "bilateral"]
    r = mirror_test(orig, mirr)
    # lateralised originals: L->R ok, L->L same, R->L ok, R->None fail, L->bilateral fail: 2/5 flips
    assert r["n_lateralised"] == 5 and r["flip_rate"] == pytest.approx(2 / 5)
    assert r["same_side_rate"] == pytest.approx(1 / 5)
    assert r["n_bilateral"] == 2 and r["bilateral_kept"] == pytest.approx(1 / 2)
    # consistent with the expected mirror: 2 flips + 1 bilateral kept + None->None = 4 of 8
    assert r["consistency"] == pytest.approx(4 / 8) and r["n_none"] == 1


def test_mirror_test_empty_denominators_are_none():
    r = mirror_test([None], [None])
    assert r["flip_rate"] is None and r["bilateral_kept"] is None and r["consistency"] == 1.0
    with pytest.raises(ValueError):
        mirror_test(["left"], [])


def test_mirror_test_keeps_bilateral_apart_and_refuses_unpaired_answers():
    r = mirror_test(["bilateral", "bilateral", "bilateral", "left"], ["bilateral", "bilateral", "right", "right"])
    assert r["bilateral_kept"] == pytest.approx(2 / 3) and r["n_bilateral"] == 3
    assert r["consistency"] == pytest.approx(3 / 4) and r["flip_rate"] == 1.0
    with pytest.raises(ValueError, match="mirror test needs paired answers: 2 originals vs 1 mirrors"):
        mirror_test(["left", "right"], ["right"])
