"""The report writer states exactly the truth: checked with the project's own clinical keyword extractors."""

from __future__ import annotations

import random

import pytest

from brain3d.data.manifest import Truth
from brain3d.vocabulary import FINDINGS, extract, normal_report, side_set
from brain3d.synth.reports import lobe_phrase, random_truth, report_corpus, write_report


def expected_anatomy(truth: Truth) -> set[str]:
    """Locations, plus 'ventricle' exactly when the ventricles are compressed (the report names them then)."""
    return set(truth.lobes) | ({"ventricle"} if truth.findings.get("compression") else set())


def truths(n: int, seed: int = 0) -> list[Truth]:
    rng = random.Random(seed)
    return [random_truth(rng) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1])
def test_extended_extractor_recovers_side_locations_and_findings(seed: int) -> None:
    for i, truth in enumerate(truths(400, seed)):
        text = write_report(truth, False, f"sub-{i}", seed)
        got = extract(text, "extended")
        assert got["laterality"] == side_set(truth.side), text
        assert got["anatomy"] == expected_anatomy(truth), text
        assert got["pathology"] & set(FINDINGS) == {k for k, v in truth.findings.items() if v}, text
        assert got["pathology"] & {"tumor", "mass", "lesion"}, text  # a pathological report names the lesion


def test_parity_extractor_sees_the_side_word_and_the_present_findings() -> None:
    for i, truth in enumerate(truths(300, 5)):
        text = write_report(truth, False, f"sub-{i}", 0)
        got = extract(text, "parity")
        assert got["laterality"] == {truth.side}, text
        assert set(truth.lobes) <= got["anatomy"], text
        assert {k for k, v in truth.findings.items() if v} <= got["pathology"], text


def test_healthy_report_is_the_normal_study_report_whatever_the_seed() -> None:
    assert write_report(None, True, "sub-0042", 1) == write_report(None, True, "sub-0042", 99) == normal_report("sub-0042")


def test_paraphrases_vary_and_some_negate_absent_findings() -> None:
    truth = Truth(side="left", lobes=["frontal"], findings={"edema": True, "necrosis": False,
                                                             "enhancement": False, "compression": False})
    texts = [write_report(truth, False, f"sub-{i}", 0) for i in range(60)]
    assert len(set(texts)) >= 20
    negating = [t for t in texts if "necrosis" in t.lower()]
    assert negating and len(negating) < len(texts)  # sometimes negated explicitly, sometimes left out
    assert all(extract(t, "extended")["pathology"] & set(FINDINGS) == {"edema"} for t in texts)
    assert write_report(truth, False, "sub-1", 0) == write_report(truth, False, "sub-1", 0)


def test_lobe_phrase_uses_singular_adjectives() -> None:
    assert lobe_phrase(["frontal"]) == "frontal lobe"
    assert lobe_phrase(["parietal", "frontal"]) == "frontal and parietal lobes"
    three = lobe_phrase(["temporal", "frontal", "occipital", "periventricular"])
    assert three == "frontal, temporal and occipital lobes"
    assert lobe_phrase(["frontal"], plural=True) == "frontal lobes"


def test_report_corpus_is_deterministic_and_mixed() -> None:
    corpus = report_corpus(200, seed=3)
    assert len(corpus) == 200 and corpus == report_corpus(200, seed=3) and corpus != report_corpus(200, seed=4)
    sides = [extract(t, "parity")["laterality"] for t in corpus]
    assert sum(not s for s in sides) > 10  # healthy reports
    assert {"left"} in sides and {"right"} in sides and {"bilateral"} in sides


def test_pathological_report_needs_a_truth() -> None:
    with pytest.raises(ValueError):
        write_report(None, False, "sub-1", 0)
