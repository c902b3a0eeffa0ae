"""The oracle grounding harness: planted features say what they should, scores count what they should, and the
shipped tiny profile's language half writes the side and "normal" from hemisphere-only planted features."""

import pytest
import torch

from brain3d.data.manifest import Record, Truth
from brain3d.errors import ConfigError
from brain3d.eval.grounding import GroundingConfig, PlantedFeatures, planted_records, score_reports

GRID = (4, 4, 6)  # (Dp, Hp, Wp); W index 0 = patient's far left


def _record(side, healthy=False, lobes=("frontal",), findings=None):
    truth = Truth(side=side, lobes=list(lobes), findings=findings or {}) if not healthy else Truth()
    return Record(id=f"r-{side}-{healthy}", images={"flair": "planted"}, healthy=healthy, truth=truth, report="x")


def _signal(plant, record, mirrored=False):
    src = PlantedFeatures(plant, GRID, 8, signal=1.0, noise=0.0, seed=0)
    return src(record, mirrored).reshape(*GRID, 8)


def test_hemisphere_plant_lights_only_the_lesions_hemisphere_and_mirrors_like_a_scan():
    left = _signal("hemisphere", _record("left"))
    assert left[..., :3, 0].min() == 1.0 and left[..., 3:, 0].max() == 0.0
    right = _signal("hemisphere", _record("right"))
    assert right[..., 3:, 0].min() == 1.0 and right[..., :3, 0].max() == 0.0
    torch.testing.assert_close(_signal("hemisphere", _record("left"), mirrored=True), right)
    assert _signal("hemisphere", _record("bilateral"))[..., 0].min() == 1.0
    assert _signal("hemisphere", _record(None, healthy=True)).abs().max() == 0.0
    assert left[..., 1:].abs().max() == 0.0  # the side is nowhere in the content


def test_global_and_regional_plants():
    g = _signal("global", _record("right"))
    assert g[..., 0].min() == 1.0 and g[..., 1].max() == -1.0
    r = _signal("regional", _record("left", lobes=("frontal",), findings={"necrosis": True}))
    lit = r[..., 0] > 0  # frontal = anterior H (high index), left W
    assert lit[:, 2:, :3].all() and not lit[:, :2].any() and not lit[..., 3:].any()
    assert (r[..., 4][lit] == 1.0).all() and r[..., 3].abs().max() == 0.0  # necrosis channel only, edema absent


def test_noise_is_seeded_per_subject():
    src = PlantedFeatures("presence", GRID, 8, 1.0, 0.5, seed=3)
    rec = _record("left")
    torch.testing.assert_close(src(rec, False), src(rec, False))
    assert not torch.equal(src(rec, False), PlantedFeatures("presence", GRID, 8, 1.0, 0.5, seed=4)(rec, False))


def test_records_are_deterministic_and_reports_match_truth():
    a, b = planted_records(20, "test", 0.25, seed=1), planted_records(20, "test", 0.25, seed=1)
    assert [r.report for r in a] == [r.report for r in b]
    for r in a:
        assert (r.truth.side is None) == r.healthy
        if not r.healthy:
            assert (r.truth.side if r.truth.side != "bilateral" else "bilateral") in r.report


def test_score_reports_counts_side_specificity_and_mirror():
    recs = [_record("left"), _record("right"), _record(None, healthy=True), _record("bilateral")]
    gen = ["A lesion in the left frontal lobe with edema.", "A lesion in the left frontal lobe.",
           "Normal brain MRI. No focal lesion is identified.", "A mass in the bilateral frontal lobes."]
    mirrored = ["A lesion in the right frontal lobe with edema.", "A lesion in the left frontal lobe.",
                "Normal brain MRI.", "A mass in the bilateral frontal lobes."]
    s = score_reports(recs, gen, mirrored)
    assert s["side_acc_one_sided"] == 0.5 and s["side_acc_bilateral"] == 1.0 and s["healthy_specificity"] == 1.0
    assert s["mirror_flip_rate"] == 0.5 and s["presence_acc"] == 1.0 and s["lobe_f1"] == 1.0


def test_unknown_plant_is_refused():
    with pytest.raises(ConfigError):
        GroundingConfig(plant="everywhere")


@pytest.mark.slow
def test_shipped_tiny_profile_writes_side_and_normal_from_hemisphere_only_features(tmp_path):
    """The acceptance test of the language half: the tiny profile as shipped (its compressor, phases, lrs, epochs)
    on the twin as shipped (LM warmed up with the findings prefix), trained on features whose only side cue is
    *which* tokens are bright, names the side of held-out one-sided lesions and keeps healthy reports normal."""
    import dataclasses

    from brain3d.eval.grounding import run_grounding
    from brain3d.train.config import load_config
    from brain3d.twin.pretrained import TwinRecipe, make_pretrained_twin

    models = make_pretrained_twin(tmp_path / "twin", seed=42, recipe=dataclasses.replace(TwinRecipe(), vision=None))
    result = run_grounding(load_config("tiny"), models["vision"], models["language"],
                           GroundingConfig(plant="hemisphere", n_train=240, n_val=40, n_test=48, seed=5))
    s = result.scores
    assert s["n"]["one_sided"] >= 20 and s["n"]["healthy"] >= 5
    assert s["side_acc_one_sided"] >= 0.95, result.examples
    assert s["healthy_specificity"] >= 0.95, result.examples
    assert s["mirror_flip_rate"] >= 0.9
