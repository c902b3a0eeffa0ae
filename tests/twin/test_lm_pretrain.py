"""The tiny LM's findings-prefix warm-up: prefixes name a report's asserted keywords at the soft tokens' scale."""

import torch

from brain3d.twin.lm_pretrain import FindingsPrefix, findings_prefix, prefix_words


def test_prefix_words_are_the_asserted_keywords():
    report = ("A mass is seen in the bilateral frontal lobes. There is marked edema around the mass. "
              "No necrosis is seen.")
    assert prefix_words(report) == ["left", "right", "frontal", "edema", "mass"]
    assert prefix_words("Normal brain MRI. No focal lesion is identified.") == []


def _emb(d=16):
    g = torch.Generator().manual_seed(0)
    return {w: torch.randn(d, generator=g) for w in ("left", "right", "frontal", "edema", "normal")}


def test_findings_prefix_scale_length_and_marked_slots():
    emb, cfg = _emb(), FindingsPrefix(min_slots=8, max_slots=8, max_marked=3)
    vis = findings_prefix(["left", "frontal", "edema"], emb, emb["normal"], 2.0, cfg, torch.Generator().manual_seed(1))
    assert vis.shape == (8, 16)
    torch.testing.assert_close(vis.pow(2).mean(-1).sqrt(), torch.full((8,), 2.0))
    left = torch.nn.functional.cosine_similarity(vis, emb["left"][None], dim=-1)
    right = torch.nn.functional.cosine_similarity(vis, emb["right"][None], dim=-1)
    assert left.max() > 0.5 and left.max() > right.max() + 0.2  # some slot says "left", none says "right"


def test_findings_prefix_is_reproducible_and_both_sides_appear_for_bilateral():
    emb, cfg = _emb(), FindingsPrefix(min_slots=8, max_slots=8, max_marked=4)
    a = findings_prefix(["left", "right"], emb, emb["normal"], 1.0, cfg, torch.Generator().manual_seed(3))
    b = findings_prefix(["left", "right"], emb, emb["normal"], 1.0, cfg, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    for side in ("left", "right"):
        assert torch.nn.functional.cosine_similarity(a, emb[side][None], dim=-1).max() > 0.5
