"""Measure a training step's and a report's memory by running them on fake tensors (no weights, no compute).

The model is the real `Brain3D`, built from the base models' configs at a chosen depth on the meta device and
given storage-less tensors of torch's `FakeTensorMode`; a phase step is the training loop's own `PhaseObjective` forward and backward under CPU bf16
autocast (as the loop runs on a GPU), with gradient checkpointing on or off. `LiveBytes` watches every tensor
storage created while it is active and keeps the peak of their sum: what the step needs above the resident
weights (activations saved for backward, temporaries, the gradients it creates), and adds up the FLOPs of the
same run with torch's flop formulas. Tracing a 3-layer MedSigLIP + MedGemma step takes about a second.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

from brain3d.model.backbones import prepare_language_model
from brain3d.model.brain3d import Brain3D
from brain3d.model.config import Brain3DConfig
from brain3d.model.prompt import PromptLayout

BF16 = torch.bfloat16


class LiveBytes(TorchDispatchMode):
    """Peak total bytes of the tensor storages allocated while active. A storage counts once (views share it)
    and until it is freed; storages that existed before (weights, inputs) and views of them never count.
    It also adds up the FLOPs of the ops torch's flop counter knows (matmuls, convolutions, attention):
    `FlopCounterMode` itself cannot be used alongside, its module hooks keep checkpointed activations alive
    (measured: 393 instead of 290 MiB for a 3-layer checkpointed phase-1 step)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self.flops = 0
        self._live: dict[int, int] = {}  # storage id -> bytes, allocated here
        self._outside: set[int] = set()  # storages met as inputs that were allocated before

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                self._note_outside(t.untyped_storage())
        out = func(*args, **(kwargs or {}))
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.flops += count(*args, **(kwargs or {}), out_val=out)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._track(t.untyped_storage())
        return out

    def _note_outside(self, storage) -> None:
        key = storage._cdata
        if key not in self._live and key not in self._outside:
            self._outside.add(key)
            weakref.finalize(storage, self._outside.discard, key)

    def _track(self, storage) -> None:
        key = storage._cdata
        if key in self._live or key in self._outside:
            return
        nbytes = storage.nbytes()
        self._live[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)


class LengthTokenizer:
    """Stands in for the LM's tokenizer where only lengths matter: every text is `tokens` ids long (the prompt's
    own length is set on the layout). Ids are 5 (inside any vocabulary); bos 2, eos 1, pad 0 as Gemma."""

    pad_token_id, eos_token_id, bos_token_id, unk_token_id = 0, 1, 2, 3
    chat_template = None

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens

    def __len__(self) -> int:
        return 6

    def __call__(self, texts, add_special_tokens: bool = False) -> dict[str, Any]:
        if isinstance(texts, str):
            return {"input_ids": [5] * self.tokens}
        return {"input_ids": [[5] * self.tokens for _ in texts]}

    def convert_tokens_to_ids(self, token: str) -> int:
        return 3  # <unk>: the layout then uses eos as the report's end


@dataclass(frozen=True)
class StepShape:
    """The sequence a step sees: prompt ids around the K soft tokens, then the report (+ its end id)."""

    prompt_tokens: int
    report_tokens: int


def tower_configs(vision: dict, language: dict):
    """(SiglipVisionConfig, Gemma3TextConfig) from config.json dicts: the vision side a SigLIP model, SigLIP vision
    or Gemma-3 multimodal config, the language side a Gemma-3 multimodal or text config (transformers converts
    the published 4.x spelling, as when it reads the folder)."""
    from transformers import CONFIG_MAPPING, SiglipVisionConfig

    def parse(d: dict):
        return CONFIG_MAPPING[d["model_type"]].from_dict({k: v for k, v in d.items() if k != "model_type"})

    v, t = parse(vision), parse(language)
    vc = v if isinstance(v, SiglipVisionConfig) else v.vision_config
    vc.vision_use_head = False
    tc = t.text_config if hasattr(t, "text_config") else t
    for c in (vc, tc):
        c._attn_implementation = "sdpa"
    return vc, tc


def build_meta(config: Brain3DConfig, vision_config, text_config, shape: StepShape, lora: bool,
               checkpointing: bool) -> Brain3D:
    """A Brain3D on the meta device (no storage, no initialisation work): towers in bf16, brain3d tensors and
    LoRA in float32 as the trainer holds them; the prompt and every report have the lengths of `shape`."""
    from transformers import Gemma3ForCausalLM, SiglipVisionModel

    with torch.device("meta"):
        vit = SiglipVisionModel(vision_config).to(BF16).eval().requires_grad_(False)
        lm = prepare_language_model(Gemma3ForCausalLM(text_config)).to(BF16).eval().requires_grad_(False)
        tokenizer = LengthTokenizer(shape.report_tokens)  # report_ids cuts report + end id to max_report_tokens
        model = Brain3D(config.replace(gradient_checkpointing=checkpointing, max_report_tokens=shape.report_tokens),
                        vit, lm, tokenizer)
        model.layout = PromptLayout(before=[], after=[2] + [5] * (shape.prompt_tokens - 1), end=1, stop=[1])
        if lora:
            model.add_lora(config.lora)
        for params in model.param_groups().values():
            for p in params:
                p.data = p.data.float()
    return model


def build_fake(config: Brain3DConfig, vision_config, text_config, shape: StepShape, lora: bool,
               checkpointing: bool, mode) -> Brain3D:
    """`build_meta`'s model on fake CPU tensors of `mode` (a `fake_mode()`)."""
    model = build_meta(config, vision_config, text_config, shape, lora, checkpointing)
    with mode:
        return materialize(model)


def materialize(module: torch.nn.Module, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Replace a meta-device module's parameters and buffers by empty tensors on `device` of the same shapes
    and dtypes (fake ones inside a `fake_mode`), keeping tied parameters tied and trainability as it was.
    Real tensors are left uninitialised: the caller fills them."""
    made: dict[int, torch.Tensor] = {}  # id of a meta tensor (kept alive by the module) -> its replacement

    def empty(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=t.dtype, device=device)

    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is not None:
                if id(p) not in made:
                    made[id(p)] = torch.nn.Parameter(empty(p), requires_grad=p.requires_grad)
                sub._parameters[name] = made[id(p)]
        for name, b in list(sub._buffers.items()):
            if b is not None:
                if id(b) not in made:
                    made[id(b)] = empty(b)
                sub._buffers[name] = made[id(b)]
    return module


def fake_mode():
    """A FakeTensorMode: tensors made inside it have shapes, dtypes and devices but no storage."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


@dataclass
class Measured:
    peak_bytes: int  # peak of the storages created during the traced work
    flops: int  # matmul / attention FLOPs of it


def train_step(model: Brain3D, phase, inputs: str, batch: int, bank_size: int = 8) -> None:
    """One training step's forward and backward of `phase` (train.phases.PhaseConfig) at `batch` samples, as
    `train.loop.run_phase` runs it on a GPU: the phase's groups trainable, its PhaseObjective, bf16 autocast,
    loss.backward. The batch itself is made here (it lives on the device during the step). `inputs`: 'volumes'
    (the encoder runs) or 'features' (cached encoder features)."""
    from brain3d.train.features import TextBank
    from brain3d.train.loop import PhaseObjective
    from brain3d.train.phases import select_trainable

    select_trainable(model, phase)
    reports = [f"report {i}" for i in range(max(batch, bank_size))]
    bank = None
    if phase.objective == "contrastive":
        bank = TextBank(reports, torch.randn(len(reports), model.projector.fc2.out_features, device=model.device))
    objective = PhaseObjective(model, phase, inputs, bank)
    x = _inputs(model, inputs, batch)
    model.train()
    with torch.autocast(model.device.type, dtype=BF16):
        loss = objective(x, reports[:batch])
    loss.backward()


def eval_step(model: Brain3D, phase, inputs: str, batch: int) -> None:
    """A validation pass of a language-model phase at `batch` (forward with its loss, no gradients, bf16
    autocast), as `train.loop.evaluate` runs it at `eval_batch_size`."""
    from brain3d.train.loop import report_loss

    x = _inputs(model, inputs, batch)
    model.eval()
    with torch.no_grad(), torch.autocast(model.device.type, dtype=BF16):
        report_loss(model, phase, [f"report {i}" for i in range(batch)], {inputs: x})


def encode_step(model: Brain3D, batch: int) -> None:
    """A report's encoder pass at `batch` volumes to soft tokens (no gradients), as `brain3d report` runs it."""
    x = _inputs(model, "volumes", batch)
    model.eval()
    with torch.no_grad():
        model.visual_tokens(model.encode_volume(x))


def prefill_step(model: Brain3D, batch: int) -> None:
    """A report's language-model prefill at `batch`: soft tokens from cached features, the prompt around them,
    one forward filling the KV cache with logits of the last position only (as `generate` does)."""
    x = _inputs(model, "features", batch)
    model.eval()
    with torch.no_grad():
        prefix = model._prefix(model.visual_tokens(x))  # (B, P, dlm)
        mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
        model.lm(inputs_embeds=prefix, attention_mask=mask, use_cache=True, logits_to_keep=1)


def traced(step: Callable[..., None], model: Brain3D, mode, *args) -> Measured:
    """Peak bytes and FLOPs of `step(model, *args)` run on the fake tensors of `mode` (gradients it leaves
    are dropped afterwards)."""
    tracker = LiveBytes()
    with mode:
        with tracker:
            step(model, *args)
        model.zero_grad(set_to_none=True)
    return Measured(tracker.peak, tracker.flops)


def _inputs(model: Brain3D, inputs: str, batch: int) -> torch.Tensor:
    if inputs == "volumes":
        return torch.rand(batch, model.config.in_channels, *model.config.image_size, device=model.device)  # (B, C, D, H, W)
    return torch.randn(batch, model.encoder.num_tokens, model.encoder.dim, dtype=BF16, device=model.device)  # (B, N, dv)
