"""Keyword-weighted report loss: which tokens are keywords, and the loss they feed."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from brain3d.errors import ConfigError
from brain3d.model.brain3d import Brain3D
from brain3d.twin.tiny import tiny_config
from brain3d.train.keywords import keyword_positions, keyword_spans, keyword_weights
from brain3d.train.losses import weighted_lm_loss
from brain3d.train.phases import PhaseConfig

REPORT = "The lesion lies in the left fronto-parietal region, without enhancing rim. Normal ventricles."


def _words(text, spans):
    return [text[a:b] for a, b in spans]


def test_keyword_spans_are_the_scorer_s_words_plus_normal_and_negations():
    assert _words(REPORT, keyword_spans(REPORT)) == [
        "lesion", "left", "fronto", "parietal", "without", "enhancing", "Normal", "ventricles"]
    assert keyword_spans("The study is within limits.") == []


def test_keyword_positions_follow_report_ids_and_cover_split_words(tiny_models):
    tok = AutoTokenizer.from_pretrained(tiny_models["language"])
    text = REPORT + " Oedematous"  # a rare form the tokenizer splits into pieces
    flags = keyword_positions(tok, [text], 512)[0]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(flags) == len(ids) + 1 and flags[-1] is False  # + the end id, never a keyword
    offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    flagged = "".join(text[a:b] for (a, b), f in zip(offsets, flags) if f).replace(" ", "")
    assert flagged == "lesionleftfrontoparietalwithoutenhancingNormalventriclesOedematous"
    assert len(keyword_positions(tok, [text], 5)[0]) == 5  # truncated like report_ids


def test_keyword_positions_refuse_a_slow_tokenizer():
    class Slow:
        is_fast = False

    with pytest.raises(ConfigError, match="fast tokenizer"):
        keyword_positions(Slow(), ["left"], 8)


def test_keyword_weights_place_weights_on_the_report_labels():
    labels = torch.tensor([[-100, -100, 7, 8, 9], [-100, -100, 5, 6, -100]])
    w = keyword_weights(labels, [[False, True, False], [True, False]], 4.0)
    assert w.tolist() == [[0, 0, 1, 4, 1], [0, 0, 4, 1, 0]]
    with pytest.raises(ValueError, match="do not match"):
        keyword_weights(labels, [[False], [True, False]], 4.0)


def test_weighted_loss_with_unit_weights_is_the_lm_loss_and_weights_move_it():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[-100, 3, 4, 5, 6, 7], [-100, -100, 1, 2, -100, -100]])
    plain = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100)
    ones = (labels != -100).float()
    torch.testing.assert_close(weighted_lm_loss(logits, labels, ones), plain)
    heavy = ones.clone()
    heavy[0, 3] = 100.0  # one token dominates
    ce = F.cross_entropy(logits[0, 2], labels[0, 3])
    assert abs(weighted_lm_loss(logits, labels, heavy) - ce) < abs(plain - ce)


def test_phase_report_loss_weighs_keywords(tiny_models):
    from brain3d.train.loop import report_loss

    torch.manual_seed(0)
    model = Brain3D.build(tiny_config(tiny_models, image_size=(16, 32, 32)))
    vols = torch.rand(2, 1, 16, 32, 32)
    reports = [REPORT, "Normal brain MRI. No focal lesion is identified."]
    plain = PhaseConfig(groups=["projector"], objective="lm")
    weighted = PhaseConfig(groups=["projector"], objective="lm", keyword_weight=5.0)
    with torch.no_grad():
        torch.testing.assert_close(report_loss(model, plain, reports, {"volumes": vols}),
                                   model(reports, volumes=vols).loss)
        assert not torch.allclose(report_loss(model, weighted, reports, {"volumes": vols}),
                                  model(reports, volumes=vols).loss)
    with pytest.raises(ValueError):
        PhaseConfig(groups=["projector"], objective="lm", keyword_weight=0.5)
