"""The image-reliance verdicts on planted models whose behaviour is known: a model that ignores its image must be
called so, one that reads it must not; only a model that reads the side flips it for the mirror."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brain3d.train.diagnostics import VARIANTS, image_reliance, probe_inputs
from tests.planted import ImageBlind, PresenceReader, SideReader
from tests.train.conftest import blob_volume


def _volume(side: str) -> torch.Tensor:
    return torch.from_numpy(blob_volume(side, 3))[None]  # (C=1, D, H, W), ball at low W = patient's left


def test_probe_inputs_are_the_real_a_zero_a_shuffled_and_the_left_right_mirrored_volume():
    x = _volume("left")
    probes = probe_inputs(x, seed=1)
    assert probes.shape == (4, *x.shape)
    torch.testing.assert_close(probes[0], x)
    assert not probes[1].any()
    np.testing.assert_array_equal(np.sort(probes[2].numpy(), axis=None), np.sort(x.numpy(), axis=None))  # same histogram
    assert not torch.equal(probes[2], x)
    # the mirror exchanges the patient's left and right (W) and keeps every other axis
    torch.testing.assert_close(probes[3], torch.from_numpy(blob_volume("left", 3)[..., ::-1].copy())[None])
    ball = np.argwhere(probes[3][0].numpy() == 1.0).mean(axis=0)
    assert ball[2] > x.shape[-1] / 2 and ball[0] == pytest.approx(8.0) and ball[1] == pytest.approx(13.0)


@pytest.mark.parametrize("side, mirror", [("left", "right"), ("right", "left")])
def test_a_model_that_reads_the_side_is_not_called_image_blind_and_flips_for_the_mirror(side, mirror):
    model = SideReader()
    model.train()
    d = image_reliance(model, _volume(side), max_new_tokens=8)
    assert set(d["texts"]) == set(VARIANTS)
    assert d["sides"] == {"real": side, "zero": None, "shuffled": None, "mirrored": mirror}
    assert d["ignores_image"] is False and d["text_changes_zero"] and d["text_changes_shuffled"]
    assert d["text_changes_mirrored"] is True and d["mirror_flips_side"] is True
    assert model.training  # the model's mode is given back
    assert len(model.seen) == 4


def test_a_model_that_ignores_its_image_is_called_so():
    d = image_reliance(ImageBlind(), _volume("left"))
    assert d["ignores_image"] is True
    assert not (d["text_changes_zero"] or d["text_changes_shuffled"] or d["text_changes_mirrored"])
    assert d["mirror_flips_side"] is False  # it names the same side for the mirror


def test_a_model_that_reads_only_presence_uses_its_image_but_does_not_flip_the_side():
    d = image_reliance(PresenceReader(), _volume("right"))
    assert d["sides"]["real"] == "left"  # its (wrong) side comes from no image evidence
    assert d["ignores_image"] is False and d["text_changes_zero"] is True
    assert d["mirror_flips_side"] is False


def test_no_side_in_the_real_report_gives_no_mirror_verdict():
    noise = torch.from_numpy(blob_volume(None, 3))[None]
    d = image_reliance(SideReader(), (noise + noise.flip(-1)) / 2)  # left-right symmetric: no side to read
    assert d["sides"]["real"] is None and d["mirror_flips_side"] is None


def test_token_cosines_compare_each_variant_with_the_real_volume():
    d = image_reliance(SideReader(), _volume("left"))
    x = probe_inputs(_volume("left"))
    feats = SideReader().encode_volume(x).reshape(4, -1).double()
    for i, name in enumerate(VARIANTS[1:], start=1):
        expected = float(torch.nn.functional.cosine_similarity(feats[0], feats[i], dim=0))
        assert d[f"token_cosine_real_vs_{name}"] == pytest.approx(expected, abs=1e-6)
