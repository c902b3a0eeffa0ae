"""Base models load from local folders only, every weight from the checkpoint, or fail loudly."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from brain3d.errors import CheckpointError
from brain3d.model import backbones


def _tensor(folder, key):
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        return fh.get_tensor(key)


def test_vision_tower_from_siglip_and_from_gemma3_folders(tiny_models):
    vit = backbones.load_vision_tower(tiny_models["vision"])
    assert torch.equal(vit.encoder.layers[1].mlp.fc1.weight, _tensor(tiny_models["vision"], "vision_model.encoder.layers.1.mlp.fc1.weight"))
    assert not hasattr(vit, "head") and vit.config._attn_implementation == "sdpa"
    assert not any(p.requires_grad for p in vit.parameters())
    tower = backbones.load_vision_tower(tiny_models["language"])
    key = [k for k in backbones.checkpoint_keys(tiny_models["language"]) if k.endswith("layers.0.mlp.fc1.weight") and "vision" in k][0]
    assert torch.equal(tower.encoder.layers[0].mlp.fc1.weight, _tensor(tiny_models["language"], key))


def test_language_model_is_the_text_model_of_the_multimodal_checkpoint(tiny_models):
    lm = backbones.load_language_model(tiny_models["language"])
    assert type(lm).__name__ == "Gemma3ForCausalLM" and lm.dtype == torch.float32
    ref = _tensor(tiny_models["language"], "language_model.model.layers.1.self_attn.q_proj.weight")
    assert torch.equal(lm.model.layers[1].self_attn.q_proj.weight, ref)
    assert torch.equal(lm.lm_head.weight, lm.model.embed_tokens.weight)  # tied, as in Gemma
    tok = backbones.load_tokenizer(tiny_models["language"])
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)
    assert tok.chat_template


def test_causal_lm_folder_loads_too(tiny_models, tmp_path):
    lm = backbones.load_language_model(tiny_models["language"])
    lm.save_pretrained(tmp_path / "causal")
    again = backbones.load_language_model(tmp_path / "causal")
    assert torch.equal(again.model.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)


def test_a_missing_weight_is_a_checkpoint_error(tiny_models, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["language"], broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["language_model.model.layers.1.mlp.down_proj.weight"]
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="uninitialised"):
        backbones.load_language_model(broken)
    with pytest.raises(CheckpointError, match="uninitialised"):
        bad_vision = tmp_path / "bad_vision"
        shutil.copytree(tiny_models["vision"], bad_vision)
        state = load_file(str(bad_vision / "model.safetensors"))
        del state["vision_model.post_layernorm.weight"]
        save_file(state, str(bad_vision / "model.safetensors"), metadata={"format": "pt"})
        backbones.load_vision_tower(bad_vision)


def test_missing_or_wrong_folders_are_checkpoint_errors(tiny_models, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        backbones.load_vision_tower(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not a Gemma-3"):
        backbones.load_language_model(tiny_models["vision"])
    (tmp_path / "nocfg").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        backbones.load_language_model(tmp_path / "nocfg")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_models["vision"] / "config.json", pickled / "config.json")
    with pytest.raises(CheckpointError, match="safetensors"):
        backbones.load_vision_tower(pickled)
    assert json.loads((tiny_models["vision"] / "config.json").read_text(encoding="utf-8"))["architectures"] == ["SiglipModel"]
