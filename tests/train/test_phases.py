"""Phases on the tiny twin: what trains, what stays bit-identical, and that phase 1 learns."""

import pytest
import torch

from brain3d.data.dataset import collate
from brain3d.errors import TrainingError
from brain3d.train.loop import PhaseObjective, run_phase
from brain3d.train.phases import select_trainable
from brain3d.train.run import Trainer, train

from .conftest import fast_config


def _trainer(tmp_path, manifest, tiny_models, **changes):
    return Trainer(fast_config(**changes), manifest, tmp_path / "run", progress=False,
                   vision_model=tiny_models["vision"], language_model=tiny_models["language"])


def test_phase1_has_gradients_and_its_loss_decreases(tmp_path, train_manifest, tiny_models):
    trainer = _trainer(tmp_path, train_manifest, tiny_models)
    model = trainer.load_model()
    data, cache = trainer.prepare_phase("1", model)
    assert cache is None and data.inputs == "volumes" and data.bank is not None
    phase = trainer.config.phases["1"]
    opt = torch.optim.AdamW(select_trainable(model, phase), lr=2e-3)
    objective = PhaseObjective(model, phase, data.inputs, data.bank)
    batch = collate([data.train[i] for i in range(4)])
    groups = model.param_groups()
    losses = []
    for step in range(6):
        opt.zero_grad()
        loss = objective(batch["inputs"], batch["report"])
        loss.backward()
        if step == 0:
            for name in ("stem", "depth_pos", "projector", "gate"):
                assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[name]), name
            frozen = [p for n, p in model.named_parameters() if n.startswith(("lm.", "encoder.vit."))]
            assert frozen and all(p.grad is None for p in frozen)
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 0.1
    assert losses[-1] < 0.8 * losses[0], losses


def test_phase1_refuses_batch_size_one(tmp_path, train_manifest, tiny_models):
    with pytest.raises(TrainingError, match="at least 2 volumes"):
        train(fast_config(phases__1__batch_size=1), train_manifest, tmp_path / "run", phases="1", progress=False,
              vision_model=tiny_models["vision"], language_model=tiny_models["language"])


def _changed(before: dict, model) -> set[str]:
    after = model.state_dict()
    assert set(after) == set(before)
    return {n for n in before if not torch.equal(before[n], after[n])}


def _names(model, *groups) -> set[str]:
    """Parameter names of the groups; with the projector also the statistics it learns (feature_norm buffers)."""
    ids = {id(p) for g in groups for p in model.param_groups()[g]}
    names = {n for n, p in model.named_parameters() if id(p) in ids}
    if "projector" in groups:
        names |= {n for n, _ in model.named_buffers() if n.startswith("projector.")}
    return names


@pytest.mark.parametrize("name, groups", [("2a", ("projector", "gate")), ("2b", ("projector", "gate", "lora"))])
def test_phase2_changes_only_its_groups(tmp_path, train_manifest, tiny_models, name, groups):
    trainer = _trainer(tmp_path, train_manifest, tiny_models)
    model = trainer.load_model()
    data, cache = trainer.prepare_phase(name, model)  # adds LoRA for 2b
    assert data.inputs == "features" and cache["entries"] > 0
    before = {n: t.detach().clone() for n, t in model.state_dict().items()}
    result = run_phase(trainer.loop_context(), name, trainer.config.phases[name], model, data)
    assert result.steps > 0
    changed = _changed(before, model)
    allowed = _names(model, *groups)
    assert changed, "nothing trained"
    assert changed <= allowed, sorted(changed - allowed)[:5]
    for g in groups:  # every group of the phase really trained
        assert changed & _names(model, g), g


def test_cached_and_uncached_phase2_steps_give_the_same_loss(tmp_path, train_manifest, tiny_models):
    cached = _trainer(tmp_path / "a", train_manifest, tiny_models)
    uncached = _trainer(tmp_path / "b", train_manifest, tiny_models, cache__enabled=False)
    model = cached.load_model()
    data_c, info = cached.prepare_phase("2a", model)
    data_u, none = uncached.prepare_phase("2a", model)
    assert info["entries"] > 0 and none is None
    assert (data_c.inputs, data_u.inputs) == ("features", "volumes")
    phase = cached.config.phases["2a"]
    obj_c, obj_u = PhaseObjective(model, phase, "features"), PhaseObjective(model, phase, "volumes")
    model.eval()
    mirrored_seen = set()
    for epoch in (0, 1):
        data_c.train.set_epoch(epoch)
        data_u.train.set_epoch(epoch)
        idx = list(range(len(data_c.train)))
        bc, bu = collate([data_c.train[i] for i in idx]), collate([data_u.train[i] for i in idx])
        assert bc["report"] == bu["report"] and bc["mirrored"] == bu["mirrored"]
        mirrored_seen.update(bc["mirrored"])
        with torch.no_grad():
            lc, lu = obj_c(bc["inputs"], bc["report"]), obj_u(bu["inputs"], bu["report"])
        torch.testing.assert_close(lc, lu, rtol=1e-5, atol=1e-6)
    assert mirrored_seen == {True, False}  # both laterality variants came from the cache


def test_qlora_phase_trains_adapters_on_a_4bit_language_model(tmp_path, train_manifest, tiny_models):
    summary = train(fast_config(model__load_4bit=True, diagnostics__enabled=False), train_manifest, tmp_path / "run",
                    phases="2b", progress=False, vision_model=tiny_models["vision"],
                    language_model=tiny_models["language"])
    assert summary["phases"]["2b"]["steps"] > 0
    from brain3d.model.brain3d import Brain3D

    model = Brain3D.from_pretrained(tmp_path / "run" / "phase2b")
    lora_layers = [m for n, m in model.lm.named_modules() if n.endswith("q_proj") and hasattr(m, "lora_A")]
    assert lora_layers and all("4bit" in type(m).__name__ for m in lora_layers)


def test_findings_head_learns_report_labels_in_phase1_and_is_saved(tmp_path, train_manifest, tiny_models):
    """The phase-1 findings target: labels read from each report (side included) train the head, the stem and the
    compressor path; the head is a trained tensor of the checkpoint, and a mirrored item's labels follow the mirror."""
    from brain3d.data.dataset import swap_sides
    from brain3d.model.brain3d import FINDING_LABELS, Brain3D
    from brain3d.train.findings import report_labels

    trainer = _trainer(tmp_path, train_manifest, tiny_models, model__findings_head=True,
                       phases__1__findings_weight=1.0)
    model = trainer.load_model()
    data, _ = trainer.prepare_phase("1", model)
    phase = trainer.config.phases["1"]
    objective = PhaseObjective(model, phase, data.inputs, data.bank)
    batch = collate([data.train[i] for i in range(4)])
    opt = torch.optim.AdamW(select_trainable(model, phase), lr=5e-3)
    labels = report_labels(batch["report"])
    bce = []
    for _ in range(8):
        opt.zero_grad()
        objective(batch["inputs"], batch["report"]).backward()
        assert model.findings_head.scale.grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.param_groups()["projector"])
        opt.step()
        with torch.no_grad():
            logits = model.findings_logits(model.visual_tokens(model.encode_volume(batch["inputs"])))
            bce.append(float(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)))
    assert bce[-1] < bce[0]
    from brain3d.train.loop import evaluate

    plain = evaluate(model, phase.model_copy(update={"findings_weight": 0.0}), data, 4)
    assert evaluate(model, phase, data, 4) > plain  # validation counts the findings target as training does
    left = "A lesion in the left frontal lobe with edema. No necrosis is seen."
    a, b = report_labels([left, swap_sides(left)])
    idx = {name: i for i, name in enumerate(FINDING_LABELS)}
    assert a[idx["left"]] == 1 and a[idx["right"]] == 0 and b[idx["right"]] == 1 and b[idx["left"]] == 0
    assert a[idx["necrosis"]] == 0 and a[idx["edema"]] == 1 and a[idx["lesion"]] == 1 and a[idx["normal"]] == 0
    model.save_pretrained(tmp_path / "ckpt")
    again = Brain3D.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(again.findings_head.scale, model.findings_head.scale)
    torch.testing.assert_close(again.findings_head.words, model.findings_head.words)  # rebuilt from the LM


def test_fixture_scans_hold_the_ball_on_the_patients_side(train_manifest):
    """The training fixture is stored RAS: after reading, a 'left' subject is bright at low W (patient left)."""
    from brain3d.data.manifest import read_manifest
    from brain3d.preprocess import PreprocessConfig, load_for_model

    for rec in read_manifest(train_manifest):
        if rec.healthy:
            continue
        x = load_for_model(rec.images["flair"], PreprocessConfig(size=(16, 32, 32))).tensor[0]  # (D, H, W)
        left, right = x[..., :16].max().item(), x[..., 16:].max().item()
        assert (left > right) == (rec.truth.side == "left"), rec.id
