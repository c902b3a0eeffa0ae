"""The three training phases, described as data: which parameter groups train, on which inputs, with which loss.

Group names are those of `Brain3D.param_groups()` (`model.brain3d.GROUPS`): stem, depth_pos, compressor, projector,
gate, lora, findings_head, regions.
Hyper-parameters default to FACTS.md (paper / reference code); a run config overrides any of them.
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from brain3d.errors import ConfigError
from brain3d.model.brain3d import GROUPS

PHASE_ORDER = ("1", "2a", "2b")


class PhaseConfig(BaseModel):
    """One phase: what trains, on what, with which loss and optimiser settings.

    objective 'contrastive': symmetric InfoNCE of volume vs report embeddings (phase 1);
    findings_weight > 0 adds a binary cross-entropy of the model's findings head against the structured findings
    read from each report (side, lobes, findings, abnormal; `train.findings`), a target that tells left from right;
    region_weight > 0 adds the segmentation loss of the model's region read-out (model/regions.py) against the
    subjects' lesion masks (volumes input only: the masks travel with the scans).
    'lm': masked next-token loss on report tokens (phases 2A/2B); keyword_weight > 1 counts the tokens of
    clinical keywords (side, lobes, findings, normal; see keywords.py) that many times (1 = the paper's loss).
    inputs 'volumes': the encoder runs every step (it trains); 'features': frozen-encoder features read
    from the on-disk cache (computed once).
    lr: base lr of every group; group_lr: absolute lr for named groups (e.g. stem 1e-4, lora 5e-5).
    batch_size is per process; the optimiser steps every `grad_accum` batches.
    """

    model_config = ConfigDict(extra="forbid")

    groups: list[str]
    objective: Literal["contrastive", "lm"]
    inputs: Literal["volumes", "features"] = "volumes"
    lora: bool = False
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    group_lr: dict[str, float] = Field(default_factory=dict)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    patience: int | None = Field(5, ge=1)  # epochs without val improvement before stopping; None = never
    temperature: float = Field(0.07, gt=0)  # contrastive only
    bank: bool = True  # contrastive only: contrast each volume against every cached report embedding
    keyword_weight: float = Field(1.0, ge=1.0)  # lm only: weight of clinical-keyword tokens in the loss
    findings_weight: float = Field(0.0, ge=0.0)  # contrastive only: weight of the findings-head loss (0 = off)
    region_weight: float = Field(0.0, ge=0.0)  # volumes only: weight of the region read-out's mask loss (0 = off)
    select: Literal["loss", "grounding"] = "loss"  # lm only: best state / early stopping by validation loss, or by
    # the validation grounding score (train/selection.py; the loss breaks ties)

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, v: list[str]) -> list[str]:
        unknown = [g for g in v if g not in GROUPS]
        if unknown:
            raise ValueError(f"unknown parameter group {unknown[0]!r}; known: {', '.join(GROUPS)}")
        if not v:
            raise ValueError("a phase must train at least one parameter group")
        return v

    def lr_of(self, group: str) -> float:
        return float(self.group_lr.get(group, self.lr))


# FACTS.md: phase 1 lr 5e-4 with stem x0.2 and gate x2; 2A lr 2e-4, accumulation 8, up to 10 epochs;
# 2B projector 2e-4, LoRA 5e-5, up to 15 epochs; AdamW wd 0.01; patience 5.
DEFAULT_PHASES: dict[str, dict] = {
    "1": dict(groups=["stem", "depth_pos", "compressor", "projector", "gate", "findings_head", "regions"],
              objective="contrastive",
              inputs="volumes", epochs=10, batch_size=16, grad_accum=1, lr=5e-4,
              group_lr={"stem": 1e-4, "gate": 1e-3}),
    "2a": dict(groups=["projector", "gate", "compressor"], objective="lm", inputs="features",
               epochs=10, batch_size=16, grad_accum=8, lr=2e-4),
    "2b": dict(groups=["projector", "gate", "lora"], objective="lm", inputs="features", lora=True,
               epochs=15, batch_size=16, grad_accum=8, lr=2e-4, group_lr={"lora": 5e-5}),
}


def phase_dirname(name: str) -> str:
    """Checkpoint folder of a phase: 'phase1', 'phase2a', 'phase2b'."""
    return f"phase{name}"


def parse_phases(spec: str | Iterable[str]) -> tuple[str, ...]:
    """'1,2a,2b' or ['1', '2A'] -> ('1', '2a', '2b') in training order; unknown or repeated names are refused."""
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    items = [s[len("phase"):] if s.startswith("phase") else s for s in items]
    unknown = [s for s in items if s not in PHASE_ORDER]
    if unknown or not items:
        raise ConfigError(f"unknown phase {unknown[0] if unknown else '(none)'!r}; choose from {', '.join(PHASE_ORDER)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"phase list {','.join(items)} names a phase twice")
    return tuple(sorted(items, key=PHASE_ORDER.index))


def select_trainable(model: torch.nn.Module, phase: PhaseConfig) -> list[dict]:
    """Freeze every parameter of `model`, unfreeze the phase's groups, and return AdamW parameter groups.

    Each group gets its lr; 1-D tensors (biases, norms, the gate scalar) get no weight decay. A phase group
    the model has no parameters for (e.g. the compressor of `grid_pool`) is simply empty.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    available: dict[str, list[torch.nn.Parameter]] = model.param_groups()
    if "lora" in phase.groups and phase.lora and not available.get("lora"):
        raise ConfigError("phase trains LoRA but the model has no LoRA adapters (add_lora was not applied)")
    out: list[dict] = []
    for group in phase.groups:
        params = [p for p in available.get(group, []) if p.is_floating_point()]
        for p in params:
            p.requires_grad_(True)
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        for kind, ps, wd in (("decay", decay, phase.weight_decay), ("no_decay", no_decay, 0.0)):
            if ps:
                out.append({"params": ps, "lr": phase.lr_of(group), "base_lr": phase.lr_of(group),
                            "weight_decay": wd, "name": f"{group}/{kind}"})
    if not out:
        raise ConfigError(f"phase trains {', '.join(phase.groups)} but the model has no parameters in those groups")
    return out
