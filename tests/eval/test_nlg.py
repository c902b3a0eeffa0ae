"""Language metrics: hand-worked values and agreement with the libraries' own outputs on the same strings.

Java METEOR and BERTScore (slow to start) are exercised once, offline, in test_scoring.py's fixture.
"""

from __future__ import annotations

import math

import pytest

from brain3d.eval import nlg

REFS = [
    "The lesion is located in the left frontal lobe. Edema is present.",
    "No abnormal signal intensity is identified in the brain parenchyma.",
    "A mass is seen in the right temporal lobe with central necrosis.",
    "There is a tumor involving the bilateral parietal lobes.",
]
HYPS = [
    "A lesion is located in the left frontal lobe with edema.",
    "No abnormal signal is identified.",
    "A mass is seen in the left temporal lobe.",
    "",
]


def test_bleu_hand_worked():
    # hypothesis = first 3 of 6 reference words: all precisions 1 for n<=3, BP = exp(1 - 6/3)
    r = nlg.bleu(["the cat sat on the mat"], ["The cat sat"])
    assert r["bleu1"].scores[0] == pytest.approx(math.exp(-1))
    # BLEU-4: p1..p3 = 1; no 4-gram in a 3-word output -> 0/1, which method1 smooths to 0.1/1
    assert r["bleu4"].scores[0] == pytest.approx(math.exp(-1) * 0.1 ** 0.25)
    assert nlg.bleu(["a b c d"], ["a b c d"])["bleu4"].scores[0] == pytest.approx(1.0)


def test_bleu_matches_nltk_on_lowercased_whitespace_tokens():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    sm = SmoothingFunction().method1
    r = nlg.bleu(REFS, HYPS)
    for i, (ref, hyp) in enumerate(zip(REFS, HYPS)):
        if not hyp:
            assert r["bleu1"].scores[i] == 0.0 and r["bleu4"].scores[i] == 0.0
            continue
        rt, ht = ref.lower().split(), hyp.lower().split()
        assert r["bleu1"].scores[i] == pytest.approx(sentence_bleu([rt], ht, weights=(1, 0, 0, 0), smoothing_function=sm))
        assert r["bleu4"].scores[i] == pytest.approx(sentence_bleu([rt], ht, smoothing_function=sm))


def test_rouge_hand_worked_and_matches_rouge_score():
    r = nlg.rouge(["the cat sat on the mat"], ["the cat sat"])
    assert r["rouge1"].scores[0] == pytest.approx(2 / 3)      # P 3/3, R 3/6
    assert r["rouge2"].scores[0] == pytest.approx(4 / 7)      # P 2/2, R 2/5
    assert r["rougeL"].scores[0] == pytest.approx(2 / 3)
    # Porter stemming: "lesions" matches "lesion"
    assert nlg.rouge(["lesions"], ["lesion"])["rouge1"].scores[0] == 1.0

    from rouge_score import rouge_scorer

    sc = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    r = nlg.rouge(REFS, HYPS)
    for i, (ref, hyp) in enumerate(zip(REFS, HYPS)):
        lib = sc.score(ref, hyp)
        for k in ("rouge1", "rouge2", "rougeL"):
            assert r[k].scores[i] == pytest.approx(lib[k].fmeasure)


def test_cider_matches_pycocoevalcap_and_corpus_is_the_mean():
    from pycocoevalcap.cider.cider import Cider

    res = nlg.cider(REFS, HYPS)
    gts = {i: [" ".join(r.lower().split())] for i, r in enumerate(REFS)}
    hyp = {i: [" ".join(h.lower().split())] for i, h in enumerate(HYPS)}
    corpus, per = Cider().compute_score(gts, hyp)
    assert res.scores == pytest.approx(list(per))
    assert res.info["corpus"] == pytest.approx(corpus)
    assert sum(res.scores) / len(res.scores) == pytest.approx(corpus)
    assert res.scores[3] == 0.0  # empty output
    # a perfect copy of distinct references scores higher than the noisy outputs
    assert sum(nlg.cider(REFS, REFS).scores) > sum(res.scores)


def test_cider_needs_two_subjects():
    res = nlg.cider(["a b"], ["a b"])
    assert not res.available and "2 subjects" in res.reason


def test_meteor_unavailable_without_java_or_wordnet(monkeypatch):
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    monkeypatch.setattr(nlg, "find_wordnet", lambda: None)
    java = nlg.meteor(REFS, HYPS, backend="java")
    assert not java.available and "java" in java.reason
    auto = nlg.meteor(REFS, HYPS, backend="auto")
    assert not auto.available and "java" in auto.reason and "WordNet" in auto.reason
    assert auto.scores is None  # never 0


class _NoSynonyms:
    """A WordNet stand-in without synonyms: METEOR then matches exact words and Porter stems only."""

    def synsets(self, word, pos=None):
        return []


def test_nltk_meteor_with_a_local_wordnet():
    res = nlg._meteor_nltk(["the cat sat on the mat"], ["the cat sat on the mat"], wordnet=_NoSynonyms())
    # Fmean = 1, one chunk of 6 matches: penalty = 0.5 * (1/6)^3
    assert res.scores[0] == pytest.approx(1 - 0.5 / 216, abs=1e-4)


def test_bertscore_unavailable_with_reason_for_a_missing_folder(tmp_path):
    res = nlg.bertscore(REFS, HYPS, model_dir=tmp_path / "nope")
    assert not res.available and "config.json" in res.reason


def test_packaged_bertscore_model_is_found():
    folder = nlg.packaged_bertscore_model()
    assert folder is not None and (folder / "model.safetensors").is_file()


def test_disabled_metrics_are_unavailable_not_zero():
    out = nlg.nlg_scores(REFS, HYPS, nlg.NLGOptions(meteor=False, bertscore=False))
    assert list(out) == list(nlg.NLG_METRICS)
    assert not out["meteor"].available and "disabled" in out["meteor"].reason
    assert not out["bertscore"].available
    assert all(out[k].available for k in ("bleu1", "bleu4", "rouge1", "rouge2", "rougeL", "cider"))
