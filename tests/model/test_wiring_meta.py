"""MedSigLIP-448 + MedGemma-1.5-4B-shaped Brain3D on the meta device (no weights): dimensions, token
counts, what each training phase trains, and LoRA only inside the language model (FACTS.md numbers)."""

import pytest
import torch

from brain3d.model.brain3d import Brain3D
from brain3d.model.config import Brain3DConfig

# DESIGN.md: which parameter groups each phase trains.
PHASES = {
    "phase1": ["stem", "depth_pos", "compressor", "projector", "gate"],
    "phase2a": ["compressor", "projector", "gate"],
    "phase2b": ["compressor", "projector", "gate", "lora"],
}


@pytest.fixture(scope="module")
def backbones_meta():
    from transformers import Gemma3TextConfig, SiglipVisionConfig, SiglipVisionModel, Gemma3ForCausalLM

    medsiglip = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                   num_attention_heads=16, patch_size=14, image_size=448, vision_use_head=False)
    medgemma = Gemma3TextConfig(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                                num_key_value_heads=4, head_dim=256, vocab_size=262208, sliding_window=1024)
    with torch.device("meta"):
        return SiglipVisionModel(medsiglip), Gemma3ForCausalLM(medgemma)


def _build(cfg, vit, lm):
    with torch.device("meta"):
        return Brain3D(cfg, vit, lm)


@pytest.mark.parametrize("parity, grid, tokens", [(False, (32, 9, 9), 2592), (True, (65, 9, 9), 5265)])
def test_real_shaped_wiring(backbones_meta, parity, grid, tokens):
    vit, lm = backbones_meta
    cfg = Brain3DConfig.parity("v", "l") if parity else Brain3DConfig("v", "l")
    m = _build(cfg, vit, lm)
    assert (m.projector.fc1.in_features, m.projector.fc1.out_features, m.projector.fc2.out_features) == (1152, 2560, 2560)
    assert m.encoder.grid == grid and m.encoder.num_tokens == tokens
    assert m.encoder.stem.kernel_size == (2, 14, 14) and m.encoder.stem.stride == ((1 if parity else 2), 14, 14)
    assert m.encoder.position_embedding().shape == (tokens, 1152)
    feats = m.encode_volume(torch.empty(1, 1, 64, 128, 128, device="meta"))
    assert feats.shape == (1, tokens, 1152)
    assert m.visual_tokens(feats).shape == (1, 32, 2560)


def test_each_phase_trains_only_brain3d_tensors_and_lora_stays_in_the_lm(backbones_meta):
    vit, lm = backbones_meta
    m = _build(Brain3DConfig("v", "l", compressor="perceiver"), vit, lm)
    for phase in ("phase1", "phase2a"):
        m.set_trainable(PHASES[phase])
        names = [n for n, p in m.named_parameters() if p.requires_grad]
        assert names and not any(n.startswith(("encoder.vit.", "lm.")) for n in names), phase
    m.set_trainable(PHASES["phase1"])
    trained = {n for n, p in m.named_parameters() if p.requires_grad}
    assert {"encoder.stem.weight", "encoder.stem.bias", "encoder.depth_pos", "projector.vis_scale"} <= trained
    m.set_trainable(PHASES["phase2a"])
    assert not any(n.startswith("encoder.") for n, p in m.named_parameters() if p.requires_grad)

    m.add_lora()
    lora_modules = [n for n, mod in m.named_modules() if hasattr(mod, "lora_A")]
    assert len(lora_modules) == 34 * 4
    assert all(n.startswith("lm.") and ".self_attn." in n for n in lora_modules)
    assert not any(hasattr(mod, "lora_A") for mod in m.encoder.modules())
    m.set_trainable(PHASES["phase2b"])
    trained = [n for n, p in m.named_parameters() if p.requires_grad]
    lora = [n for n in trained if "lora_" in n]
    assert len(lora) == 34 * 4 * 2 and all(n.startswith("lm.") for n in lora)
    assert all(n.startswith(("projector.", "compressor.")) for n in trained if "lora_" not in n)
