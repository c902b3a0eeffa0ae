"""`brain3d plan`: what a training run and a report need on one GPU, per phase, before anything is downloaded.

Parameters are counted on the full-depth model built on the meta device. Memory that a step needs above the
resident weights (activations, temporaries, the gradients it creates) is *measured*: the real `Brain3D` is
traced on fake tensors (`plan.trace`) at 1, 2 and 3 layers per tower, at two batch sizes, with gradient
checkpointing on and off; a straight line in depth through the three points is extrapolated to the towers'
real depth (the fit and its residuals are part of the plan). Weights, gradients and AdamW state follow from the
counts. Measurements are cached (package data for the packaged profiles with the published configs, then
~/.cache/brain3d/plan), so a plan answers in seconds; a new configuration is measured once (about a minute).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import torch

from brain3d import __version__
from brain3d.errors import CheckpointError, ConfigError
from brain3d.fsutil import atomic_write_json, stable_hash
from brain3d.model.backbones import GEMMA3_TYPES, SIGLIP_TYPES, read_model_config
from brain3d.model.published import LANGUAGE, VISION, at_depth, published_config
from brain3d.plan import estimate as est
from brain3d.plan import trace
from brain3d.train.config import TrainConfig
from brain3d.train.phases import PHASE_ORDER

DEPTHS = (1, 2, 3)
FORMAT = 1
PRECISIONS = ("bf16", "nf4")
# the phase settings that change what a step holds in memory
PHASE_KEYS = ("groups", "objective", "inputs", "lora", "keyword_weight", "findings_weight", "bank")
TOWER = {"1": "vision", "2a": "text", "2b": "text"}  # the tower whose depth a phase's activations follow


@dataclass
class PlanRequest:
    """What to plan: a run config, the base models' config.json contents, the card and the precision."""

    config: TrainConfig
    vision: dict
    language: dict
    sources: dict[str, str]
    gpu_mem: int
    precision: str = "bf16"
    reserve: int = est.GiB  # CUDA context and allocator slack, not available to tensors
    effective_batch: int = 128
    report_tokens: int | None = None  # None: the model's max_report_tokens (the longest a step can see)
    prompt_tokens: int | None = None  # None: estimated from the prompt's words
    new_tokens: int = 256
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        model = self.config.brain3d_config("", "")
        if self.report_tokens is None:
            self.report_tokens = model.max_report_tokens
        if self.prompt_tokens is None:
            self.prompt_tokens = estimate_prompt_tokens(model.prompt)
            self.notes.append(f"prompt length {self.prompt_tokens} tokens, estimated from its words (pass "
                              "--language-model for the tokenizer's count)")

    @property
    def shape(self) -> trace.StepShape:
        return trace.StepShape(int(self.prompt_tokens), int(self.report_tokens))


def estimate_prompt_tokens(prompt: str) -> int:
    """Gemma-sized subwords of a plain-English prompt: ~1.3 per word, plus <bos> and the newline after it."""
    return max(1, round(1.3 * len(prompt.split()))) + 2


def base_configs(vision_model: str | Path | None, language_model: str | Path | None) -> tuple[dict, dict, dict]:
    """(vision config.json, language config.json, where each came from): a folder's own file, else the published
    one shipped with brain3d. A folder of the wrong kind of model is refused, naming its config.json."""
    out, sources = [], {}
    for what, folder, allowed, name in (("vision", vision_model, SIGLIP_TYPES + ("siglip_vision_model",), VISION),
                                        ("language", language_model, GEMMA3_TYPES, LANGUAGE)):
        if folder is None:
            out.append(published_config(name))
            sources[what] = f"published {name} (brain3d/configs/base_models/{name}.json)"
            continue
        cfg = read_model_config(folder)
        if cfg.get("model_type") not in allowed:
            raise CheckpointError(f"model_type {cfg.get('model_type')!r} is not a {what} model brain3d can use "
                                  f"({', '.join(allowed)})", Path(folder) / "config.json")
        out.append(cfg)
        sources[what] = str(Path(folder) / "config.json")
    return out[0], out[1], sources


def prompt_tokens_of(language_model: str | Path, config: TrainConfig) -> int:
    """The exact number of prompt ids around the soft tokens, from the LM folder's tokenizer."""
    from brain3d.model.backbones import load_tokenizer
    from brain3d.model.prompt import build_layout

    model = config.brain3d_config("", "")
    layout = build_layout(load_tokenizer(language_model), model.prompt, model.prompt_format)
    return len(layout.before) + len(layout.after)


# ---------------------------------------------------------------------------------------------------- measuring
def measurement_key(req: PlanRequest) -> str:
    """Digest of everything the traced memory depends on."""
    import transformers

    phases = {n: {k: getattr(p, k) for k in PHASE_KEYS} for n, p in req.config.phases.items()}
    return stable_hash(FORMAT, __version__, json.dumps(req.config.model, sort_keys=True), json.dumps(phases, sort_keys=True),
                       req.config.cache.enabled, json.dumps(req.vision, sort_keys=True),
                       json.dumps(req.language, sort_keys=True), req.shape, DEPTHS, torch.__version__,
                       transformers.__version__)


def _tower(config: dict, kind: str) -> dict:
    return config.get("text_config", config) if kind == "text" else config.get("vision_config", config)


def depth_of(req: PlanRequest, tower: str) -> int:
    return int(_tower(req.vision if tower == "vision" else req.language, tower)["num_hidden_layers"])


def _phase_inputs(req: PlanRequest, name: str) -> str:
    phase = req.config.phases[name]
    return "features" if phase.inputs == "features" and req.config.cache.enabled else "volumes"


def measure(req: PlanRequest, progress: Callable[[str], None] | None = None) -> dict:
    """Trace every phase, the validation pass, the report's encoder and prefill at each depth of DEPTHS and
    two batch sizes; returns the points (JSON-able)."""
    model_cfg = req.config.brain3d_config("vision", "language")
    out: dict = {"format": FORMAT, "key": measurement_key(req), "depths": list(DEPTHS), "shape": list(req.shape.__dict__.values()),
                 "train": {n: {"checkpointing": {}, "no_checkpointing": {}} for n in PHASE_ORDER},
                 "eval": {}, "encode": {}, "prefill": {}}
    for layers in DEPTHS:
        vc, tc = trace.tower_configs(at_depth(req.vision, layers), at_depth(req.language, layers))
        for ckpt in (True, False):
            label = "checkpointing" if ckpt else "no_checkpointing"
            for lora, names in ((False, ("1", "2a")), (True, ("2b",))):
                mode = trace.fake_mode()
                model = trace.build_fake(model_cfg, vc, tc, req.shape, lora, ckpt, mode)
                for name in names:
                    if progress:
                        progress(f"phase {name}, {layers} layer(s), {label.replace('_', ' ')}")
                    phase, inputs = req.config.phases[name], _phase_inputs(req, name)
                    b0 = 2 if phase.objective == "contrastive" else 1
                    m0, m1 = (trace.traced(trace.train_step, model, mode, phase, inputs, b) for b in (b0, b0 + 1))
                    out["train"][name][label][str(layers)] = [b0, m0.peak_bytes, m1.peak_bytes, m0.flops]
                    if ckpt and name == "2b":
                        e0, e1 = (trace.traced(trace.eval_step, model, mode, phase, inputs, b) for b in (1, 2))
                        out["eval"][str(layers)] = [1, e0.peak_bytes, e1.peak_bytes, 0]
                if ckpt and not lora:
                    if progress:
                        progress(f"report, {layers} layer(s)")
                    e0, e1 = (trace.traced(trace.encode_step, model, mode, b) for b in (1, 2))
                    p0, p1 = (trace.traced(trace.prefill_step, model, mode, b) for b in (1, 2))
                    out["encode"][str(layers)] = [1, e0.peak_bytes, e1.peak_bytes, e0.flops]
                    out["prefill"][str(layers)] = [1, p0.peak_bytes, p1.peak_bytes, p0.flops]
    return out


def shipped_dir() -> Path:
    return Path(str(resources.files("brain3d.plan").joinpath("measured")))


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "brain3d" / "plan"


def load_or_measure(req: PlanRequest, remeasure: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """The measured points for `req`: shipped with brain3d, cached from an earlier plan, or traced now (and
    cached). `remeasure` traces again and refreshes the cache."""
    key = measurement_key(req)
    name = f"{key}.json"
    if not remeasure:
        for folder in (shipped_dir(), cache_dir()):
            f = folder / name
            if f.is_file():
                try:
                    return json.loads(f.read_text(encoding="utf-8"))
                except json.JSONDecodeError:
                    continue
    points = measure(req, progress)
    try:
        atomic_write_json(cache_dir() / name, points)
    except OSError:
        req.notes.append(f"could not cache the measurement in {cache_dir()}")
    return points


# ---------------------------------------------------------------------------------------------------- counting
def count_params(req: PlanRequest) -> dict:
    """Parameter counts of the full-depth model (meta device): towers, brain3d tensors, LoRA, and per phase the
    trained ones. `lm_linear` is what NF4 quantises (the decoder layers' projections)."""
    from brain3d.train.phases import select_trainable

    vc, tc = trace.tower_configs(req.vision, req.language)
    model = trace.build_meta(req.config.brain3d_config("vision", "language"), vc, tc, req.shape, lora=True,
                             checkpointing=False)
    groups = model.param_groups()
    lora = {id(p) for p in groups["lora"]}
    brain3d = {id(p) for g, ps in groups.items() if g != "lora" for p in ps}
    vit = sum(p.numel() for p in model.encoder.vit.parameters())
    lm = sum(p.numel() for p in model.lm.parameters() if id(p) not in lora)
    lm_linear = sum(m.weight.numel() for n, m in model.lm.named_modules()
                    if isinstance(m, torch.nn.Linear) and ".layers." in n and "lora_" not in n)
    buffers = sum(b.numel() for n, b in model.named_buffers() if n.startswith("projector.feature_norm."))
    counts = {
        "vision_tower": vit, "language_model": lm, "lm_linear": lm_linear,
        "lm_head": model.lm.get_output_embeddings().weight.numel(),
        "brain3d": sum(p.numel() for p in model.parameters() if id(p) in brain3d) + buffers,
        "lora": sum(p.numel() for p in model.parameters() if id(p) in lora),
        "largest_linear": max((m.weight.numel() for n, m in model.lm.named_modules()
                               if isinstance(m, torch.nn.Linear) and ".layers." in n and "lora_" not in n), default=0),
        "trainable": {},
    }
    for name in PHASE_ORDER:
        phase = req.config.phases[name]
        select_trainable(model, phase)
        counts["trainable"][name] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


# ---------------------------------------------------------------------------------------------------- planning
def _lines(points: dict, depth: int) -> tuple[est.BatchLine, dict]:
    """Per-sample and fixed bytes at full `depth` from {layers: [b0, peak(b0), peak(b0 + 1), flops]} plus fits."""
    per = est.fit_depth([(int(l), v[2] - v[1]) for l, v in points.items()])
    fixed = est.fit_depth([(int(l), v[1] - (v[2] - v[1]) * v[0]) for l, v in points.items()])
    flops = est.fit_depth([(int(l), v[3] / v[0]) for l, v in points.items()])
    line = est.BatchLine(fixed.at(depth), per.at(depth))
    return line, {"per_sample": per.to_dict(), "fixed": fixed.to_dict(), "flops_per_sample": flops.to_dict()}


def make_plan(req: PlanRequest, points: dict, counts: dict) -> dict:
    """Everything `brain3d plan` prints, as a dict (bytes, counts, FLOPs; fits with their points)."""
    nf4 = req.precision == "nf4"
    lm_bytes = (counts["language_model"] * 2 if not nf4 else
                (counts["language_model"] - counts["lm_linear"]) * 2 + counts["lm_linear"] * est.NF4_BYTES_PER_PARAM)
    base = counts["vision_tower"] * 2 + lm_bytes + counts["brain3d"] * 4
    dequant = counts["largest_linear"] * 2 if nf4 else 0  # bitsandbytes dequantises one weight at a time
    usable = req.gpu_mem - req.reserve
    plan: dict = {"gpu_mem": req.gpu_mem, "reserve": req.reserve, "usable": usable, "precision": req.precision,
                  "sources": req.sources, "shape": {"prompt_tokens": req.prompt_tokens, "report_tokens": req.report_tokens,
                                                    "soft_tokens": req.config.brain3d_config("", "").num_tokens},
                  "depth": {"vision": depth_of(req, "vision"), "text": depth_of(req, "text")},
                  "params": counts, "weights": {"vision_tower": counts["vision_tower"] * 2, "language_model": lm_bytes,
                                                "brain3d": counts["brain3d"] * 4, "lora": counts["lora"] * 4},
                  "phases": {}, "notes": list(req.notes)}
    model_ckpt = bool(req.config.model.get("gradient_checkpointing", False))
    for name in PHASE_ORDER:
        phase = req.config.phases[name]
        depth = depth_of(req, TOWER[name])
        trainable = counts["trainable"][name]
        weights = base + (counts["lora"] * 4 if phase.lora else 0)
        optimizer = trainable * 4 * est.ADAMW_STATES
        entry: dict = {"trainable": trainable, "weights": weights, "grads": trainable * 4, "optimizer": optimizer,
                       "inputs": _phase_inputs(req, name), "depth": depth, "tower": TOWER[name]}
        minimum = 2 if phase.objective == "contrastive" else 1
        for label in ("checkpointing", "no_checkpointing"):
            line, fits = _lines(points["train"][name][label], depth)
            line = est.BatchLine(line.fixed + dequant, line.per_sample)
            batch = est.largest_batch(weights + optimizer, line, usable, minimum)
            entry[label] = {"fixed": line.fixed, "per_sample": line.per_sample, "fits": fits, "max_batch": batch,
                            "grad_accum": est.grad_accumulation(req.effective_batch, batch),
                            "peak_at_max_batch": weights + optimizer + line.at(batch) if batch else None,
                            "peak_at_minimum": weights + optimizer + line.at(minimum),
                            "flops_per_sample": fits["flops_per_sample"]["intercept"]
                            + fits["flops_per_sample"]["per_layer"] * depth}
        entry["profile"] = "checkpointing" if model_ckpt else "no_checkpointing"
        entry["minimum_batch"] = minimum
        if phase.objective == "lm" and points.get("eval"):
            line, fits = _lines(points["eval"], depth)
            eb = req.config.eval_batch_size
            entry["validation"] = {"fixed": line.fixed + dequant, "per_sample": line.per_sample, "batch": eb,
                                   "peak": weights + line.at(eb) + dequant,
                                   "max_batch": est.largest_batch(weights, est.BatchLine(line.fixed + dequant, line.per_sample), usable)}
        plan["phases"][name] = entry
    plan["report"] = _report_plan(req, points, counts, base + counts["lora"] * 4, dequant, usable)
    return plan


def _report_plan(req: PlanRequest, points: dict, counts: dict, weights: float, dequant: float, usable: float) -> dict:
    """`brain3d report`: memory at a batch (encoder pass, then prefill and a KV cache growing to prompt + K +
    new tokens), the largest batch, FLOPs of the encoder and the prefill, and per decoded token."""
    tc = trace.tower_configs(req.vision, req.language)[1]
    vis_depth, lm_depth = depth_of(req, "vision"), depth_of(req, "text")
    enc, enc_fits = _lines(points["encode"], vis_depth)
    pre, pre_fits = _lines(points["prefill"], lm_depth)
    soft = req.config.brain3d_config("", "").num_tokens
    context = int(req.prompt_tokens) + soft + req.new_tokens
    kv_heads, head_dim = int(tc.num_key_value_heads), int(tc.head_dim)
    window = int(getattr(tc, "sliding_window", None) or context)

    def kv(b: int) -> int:
        return est.kv_cache_bytes(tc.layer_types, kv_heads, head_dim, window, context, b)

    def peak(b: int) -> float:
        return weights + max(enc.at(b), pre.at(b) + kv(b) + dequant)

    batch = 0
    while batch < 4096 and peak(batch + 1) <= usable:
        batch += 1
    matmul = counts["lm_linear"] + counts["lm_head"]
    lm_bytes = (counts["language_model"] * 2 if req.precision == "bf16" else
                (counts["language_model"] - counts["lm_linear"]) * 2 + counts["lm_linear"] * est.NF4_BYTES_PER_PARAM)
    return {
        "weights": weights, "max_batch": batch, "peak_at_batch_1": peak(1),
        "peak_at_max_batch": peak(batch) if batch else None, "kv_cache_per_report": kv(1), "context": context,
        "encode": {"fixed": enc.fixed, "per_sample": enc.per_sample, "fits": enc_fits,
                   "flops": enc_fits["flops_per_sample"]["intercept"] + enc_fits["flops_per_sample"]["per_layer"] * vis_depth},
        "prefill": {"fixed": pre.fixed, "per_sample": pre.per_sample, "fits": pre_fits,
                    "flops": pre_fits["flops_per_sample"]["intercept"] + pre_fits["flops_per_sample"]["per_layer"] * lm_depth},
        "decode": {"flops_per_token": est.decode_flops(matmul, tc.layer_types, int(tc.num_attention_heads), head_dim,
                                                       window, context),
                   "bytes_per_step": lm_bytes + kv(1)},
    }
