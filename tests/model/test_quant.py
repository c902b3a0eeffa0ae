"""The 4-bit NF4 path (bitsandbytes CPU backend): loads, runs a forward pass, takes LoRA (QLoRA)."""

import bitsandbytes as bnb  # a pinned dependency (pyproject.toml): missing, the suite fails here instead of skipping
import torch

from brain3d.model.brain3d import Brain3D
from brain3d.twin.tiny import tiny_config


def test_4bit_language_model_loads_runs_and_trains_lora_on_cpu(tiny_models):
    torch.manual_seed(0)
    m = Brain3D.build(tiny_config(tiny_models, load_4bit=True))
    q_proj = m.lm.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_state.quant_type == "nf4" and q_proj.weight.quant_state.nested  # double quant
    assert m.lm_dtype == torch.bfloat16 and m.encoder.stem.weight.dtype == torch.float32
    volumes = torch.rand(2, 1, 16, 32, 32)
    out = m(["There is a tumor in the left frontal lobe.", "No abnormality."], volumes=volumes)
    assert torch.isfinite(out.loss)
    m.add_lora()
    m.set_trainable(["projector", "gate", "lora"])
    m(["There is a tumor in the left frontal lobe.", "No abnormality."], volumes=volumes).loss.backward()
    lora = m.param_groups()["lora"]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    assert len(m.generate(volumes, max_new_tokens=4, min_new_tokens=4)) == 2
