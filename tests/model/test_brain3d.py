"""Brain3D on the tiny twin: encoder start point, loss masking, generation, save/load, parameter groups."""

import pytest
import torch

from brain3d.errors import CheckpointError, ConfigError, TrainingError
from brain3d.model.brain3d import Brain3D, read_checkpoint
from brain3d.model.encoder3d import SIGLIP_MEAN, SIGLIP_STD
from brain3d.twin.tiny import tiny_config

REPORTS = [
    "There is a tumor involving the left frontal lobe. Perilesional edema is observed.",
    "No abnormality is seen.",
]


@pytest.fixture(scope="module")
def model(tiny_models):
    torch.manual_seed(0)
    return Brain3D.build(tiny_config(tiny_models))


@pytest.fixture(scope="module")
def volumes():
    torch.manual_seed(1)
    return torch.rand(2, 1, 16, 32, 32)


def test_encoder_starts_at_the_2d_model_on_every_slice(tiny_models):
    # 128-px slices: the 16x16 position table is used as is, so a depth-constant volume's tokens equal the
    # 2D SigLIP embeddings of that slice (grey replicated into RGB) at every depth.
    for init in ("mean", "center"):
        m = Brain3D.build(tiny_config(tiny_models, image_size=(4, 128, 128), inflate_init=init))
        grey = torch.rand(1, 1, 128, 128)
        volume = grey.unsqueeze(2).expand(1, 1, 4, 128, 128)
        tokens = m.encoder.embed(volume).reshape(1, 2, 256, -1)  # (B, Dp, Hp*Wp, dv)
        ref = m.encoder.vit.embeddings(((grey - SIGLIP_MEAN) / SIGLIP_STD).expand(1, 3, 128, 128))  # (B, 256, dv)
        for d in range(2):
            torch.testing.assert_close(tokens[:, d], ref, rtol=1e-4, atol=1e-4)


def test_shapes_and_token_grid(model, volumes):
    assert model.encoder.grid == (8, 4, 4) and not model.training and model.set_trainable([]) == 0
    feats = model.encode_volume(volumes)
    assert feats.shape == (2, 128, 64)
    vis = model.visual_tokens(feats)
    assert vis.shape == (2, 8, 64)
    # soft tokens sit at the scale of the LM's scaled text embeddings (gate = 1 at init)
    rms = vis.float().pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, float(model.projector.text_rms)), rtol=1e-3, atol=1e-3)
    with pytest.raises(ConfigError):
        model.encode_volume(torch.rand(1, 1, 16, 32, 30))
    with pytest.raises(ConfigError):
        model.visual_tokens(feats[:, :100])


def test_labels_are_masked_exactly_on_vision_and_prompt_positions(model, volumes):
    out = model(REPORTS, volumes=volumes)
    layout, k = model.layout, model.num_vision_tokens
    p = len(layout.before) + k + len(layout.after)
    tok = model.tokenizer
    for i, report in enumerate(REPORTS):
        ids = tok(report, add_special_tokens=False).input_ids + [tok.eos_token_id]
        assert out.labels[i, :p].eq(-100).all()
        assert out.labels[i, p : p + len(ids)].tolist() == ids
        assert out.labels[i, p + len(ids) :].eq(-100).all()
        assert out.attention_mask[i].sum() == p + len(ids)
    assert out.logits.shape[:2] == out.labels.shape
    # the loss is the mean next-token cross-entropy over report positions only
    logits, labels = out.logits[:, :-1].float(), out.labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, ce)


def test_cached_features_give_the_same_loss(model, volumes):
    with torch.no_grad():
        a = model(REPORTS, volumes=volumes).loss
        b = model(REPORTS, features=model.encode_volume(volumes)).loss
    torch.testing.assert_close(a, b)
    with pytest.raises(ConfigError):
        model(REPORTS)


def test_generate_returns_only_new_tokens_and_greedy_is_deterministic(model, volumes):
    captured = []
    original = model.lm.generate

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        captured.append(out)
        return out

    model.lm.generate = spy
    try:
        texts = model.generate(volumes, max_new_tokens=12, min_new_tokens=12)
    finally:
        del model.lm.generate
    ids = captured[0]
    assert ids.shape == (2, 12)  # new tokens only, no prompt or vision positions
    assert texts == [t.strip() for t in model.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    # the first new token is the LM's argmax after [vision][prompt]
    with torch.no_grad():
        prefix = model._prefix(model.visual_tokens(model.encode_volume(volumes)))
        first = model.lm(inputs_embeds=prefix).logits[:, -1].argmax(-1)
    assert ids[:, 0].tolist() == first.tolist()
    assert model.generate(volumes, max_new_tokens=12, min_new_tokens=12) == texts


def test_paper_profile_is_seeded_and_batched(model, volumes):
    feats = model.encode_volume(volumes).detach()
    a = model.generate(features=feats, profile="paper", max_new_tokens=8, seed=3)
    b = model.generate(features=feats, profile="paper", max_new_tokens=8, seed=3)
    assert a == b and len(a) == 2
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    model.generate(features=feats, profile="paper", max_new_tokens=8, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # a seeded call leaves the caller's RNG alone
    unseeded = {tuple(model.generate(features=feats, profile="paper", max_new_tokens=8)) for _ in range(3)}
    assert len(unseeded) > 1  # without a seed, every call samples afresh
    one = model.generate(features=feats[:1], max_new_tokens=8)
    assert one == model.generate(features=feats, max_new_tokens=8)[:1]
    with pytest.raises(ConfigError):
        model.generate(features=feats, profile="beam")


def test_chat_format_wraps_vision_in_the_user_turn(tiny_models, volumes):
    m = Brain3D.build(tiny_config(tiny_models, prompt_format="chat"))
    tok = m.tokenizer
    before = tok.decode(m.layout.before)
    after = tok.decode(m.layout.after)
    assert before == "<bos><start_of_turn>user\n<start_of_image>"
    assert after.startswith("<end_of_image>\n" + m.config.prompt) and after.endswith("<start_of_turn>model\n")
    out = m(REPORTS, volumes=volumes)
    p = len(m.layout.before) + 8 + len(m.layout.after)
    kept = [t for t in out.labels[1, p:].tolist() if t != -100]
    assert kept == tok(REPORTS[1], add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<end_of_turn>")]
    assert torch.isfinite(out.loss)


def test_text_and_volume_embeddings(model, volumes):
    t = model.text_embedding(REPORTS)
    assert t.shape == (2, 64) and t.dtype == torch.float32 and not t.requires_grad
    assert not torch.allclose(t[0], t[1])
    # padding does not change a report's embedding
    torch.testing.assert_close(model.text_embedding(REPORTS[1:]), t[1:], rtol=1e-5, atol=1e-5)
    assert model.text_embedding(REPORTS, source="input").shape == (2, 64)
    feats = model.encode_volume(volumes)
    torch.testing.assert_close(model.volume_embedding(feats), model.visual_tokens(feats).float().mean(1))


def test_param_groups_and_set_trainable(model, volumes):
    groups = model.param_groups()
    assert set(groups) == {"stem", "depth_pos", "compressor", "projector", "gate", "lora", "findings_head", "regions"}
    assert groups["compressor"] == [] and groups["lora"] == [] and groups["findings_head"] == []  # no head by default
    assert groups["regions"] == []  # no region tokens by default
    n = model.set_trainable(["stem", "depth_pos", "projector", "gate"])
    assert n == sum(p.numel() for g in ("stem", "depth_pos", "projector", "gate") for p in groups[g])
    model(REPORTS, volumes=volumes).loss.backward()
    for g in ("stem", "depth_pos", "projector", "gate"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[g]), g
    assert all(p.grad is None for p in model.encoder.vit.parameters())
    assert all(p.grad is None for p in model.lm.parameters())
    model.zero_grad(set_to_none=True)
    model.set_trainable([])
    with pytest.raises(ConfigError):
        model.set_trainable(["vit"])


def test_projector_training_lowers_the_loss(tiny_models, volumes):
    torch.manual_seed(0)
    m = Brain3D.build(tiny_config(tiny_models, compressor="perceiver"))
    m.set_trainable(["compressor", "projector", "gate"])
    feats = m.encode_volume(volumes).detach()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(15):
        loss = m(REPORTS, features=feats).loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.05


def test_save_and_load_give_bit_identical_outputs(tiny_models, volumes, tmp_path):
    torch.manual_seed(0)
    m = Brain3D.build(tiny_config(tiny_models, compressor="perceiver"))
    m.add_lora()
    with torch.no_grad():  # move every trainable tensor away from its initial value
        for ps in m.param_groups().values():
            for p in ps:
                p.add_(torch.randn_like(p) * 0.05)
    m.save_pretrained(tmp_path / "ckpt", extra={"phase": "2B"})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["adapter", "brain3d.safetensors", "config.json"]
    assert not list((tmp_path / "ckpt").rglob("*.bin")) and not list((tmp_path / "ckpt").rglob("*.pt"))
    cfg, extra, has_lora = read_checkpoint(tmp_path / "ckpt")
    assert extra == {"phase": "2B"} and has_lora and cfg.lora is not None
    again = Brain3D.from_pretrained(tmp_path / "ckpt")
    assert again.has_lora and again.checkpoint_extra == {"phase": "2B"}
    m.eval(), again.eval()
    with torch.no_grad():
        a, b = m(REPORTS, volumes=volumes), again(REPORTS, volumes=volumes)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)
    assert m.generate(volumes, max_new_tokens=10) == again.generate(volumes, max_new_tokens=10)
    sa, sb = m.trainable_state_dict(), again.trainable_state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(TrainingError):
        again.add_lora()


def test_broken_checkpoints_are_checkpoint_errors(model, tmp_path):
    with pytest.raises(CheckpointError):
        Brain3D.from_pretrained(tmp_path / "none")
    model.save_pretrained(tmp_path / "ck")
    state = model.trainable_state_dict()
    state.pop("projector.vis_scale")
    with pytest.raises(CheckpointError, match="vis_scale"):
        model.load_trainable_state_dict(state)


def test_gradient_checkpointing_keeps_gradients(tiny_models, volumes):
    torch.manual_seed(0)
    m = Brain3D.build(tiny_config(tiny_models, gradient_checkpointing=True))
    m.add_lora()
    m.set_trainable(["stem", "projector", "gate", "lora"])
    m.train()
    m(REPORTS, volumes=volumes).loss.backward()
    groups = m.param_groups()
    assert groups["stem"][0].grad.abs().sum() > 0 and groups["gate"][0].grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["lora"])


def test_token_order_keeps_the_patient_left_in_left_tokens(model, volumes):
    # W index 0 is the patient's far left: a change in the left half of the volume moves only stem tokens with
    # a left patch column, and grid_pool turns those into left tokens only (before the ViT mixes them).
    changed = volumes.clone()
    changed[..., :16] = torch.rand_like(changed[..., :16])  # W < 16 of 32: patch columns 0 and 1 of 4
    with torch.no_grad():
        a, b = model.encoder.embed(volumes), model.encoder.embed(changed)  # (B, N, dv)
        moved = (a - b).abs().amax(dim=(0, 2)).reshape(model.encoder.grid) > 1e-6  # (Dp, Hp, Wp)
        assert moved[..., :2].all() and not moved[..., 2:].any()
        ta, tb = model.compressor(a, model.encoder.grid), model.compressor(b, model.encoder.grid)
    gd, gh, gw = model.compressor.pool_grid
    moved_tokens = ((ta - tb).abs().amax(dim=(0, 2)) > 1e-6).reshape(gd, gh, gw)
    assert moved_tokens[..., : gw // 2].all() and not moved_tokens[..., gw // 2 :].any()


def test_region_tokens_follow_the_masks_and_round_trip(tiny_models, volumes, tmp_path):
    """With region_tokens the LM sees K + 5 soft tokens; the mask loss trains the read-out (and the stem), a subject
    without a mask adds nothing, and the read-out's weights are part of the checkpoint."""
    from brain3d.anatomy.rules import UNKNOWN_LABEL
    from brain3d.model.regions import REGION_CLASSES

    torch.manual_seed(0)
    m = Brain3D.build(tiny_config(tiny_models, compressor="mirror_pool", region_tokens=True))
    k = m.compressor.num_tokens
    assert m.num_vision_tokens == k + len(REGION_CLASSES)
    feats = m.encode_volume(volumes)
    assert m.visual_tokens(feats).shape[1] == k + len(REGION_CLASSES)
    labels = torch.zeros(2, 16, 32, 32, dtype=torch.uint8)
    labels[0, 4:12, 8:24, 0:12] = 1  # a necrotic block on the patient's left of subject 0
    labels[1] = UNKNOWN_LABEL  # subject 1 has no mask
    m.set_trainable(["regions", "stem"])
    f = m.encode_volume(volumes)
    assert f.shape[-1] == m.feature_dim == m.encoder.dim + 3  # window mean / min / max follow the features
    m.region_loss(f, labels).backward(retain_graph=True)  # the mask loss trains the read-out's head
    head = [p for n, p in m.regions.named_parameters() if not n.startswith("mix")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)
    m.visual_tokens(f).float().pow(2).mean().backward()  # the LM side trains how a class becomes a token
    assert m.regions.mix.weight.grad.abs().sum() > 0
    assert m.encoder.stem.weight.grad.abs().sum() > 0
    with torch.no_grad():
        for p in m.param_groups()["regions"]:
            p.add_(torch.randn_like(p) * 0.05)
    m.save_pretrained(tmp_path / "ckpt")
    again = Brain3D.from_pretrained(tmp_path / "ckpt").eval()
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(again.visual_tokens(feats), m.visual_tokens(feats))
