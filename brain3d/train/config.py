"""The run configuration: one YAML file (packaged profiles `paper` and `tiny`, or any path), validated.

Sections: model (a `Brain3DConfig` without the base-model folders), data, cache, diagnostics, phases
(partial overrides of `phases.DEFAULT_PHASES`). `vision_model` / `language_model` name local base-model
folders; the value `tiny` means "write the tiny random twin into RUN_DIR/tiny-models and use it".
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brain3d.errors import ConfigError
from brain3d.model.config import Brain3DConfig
from brain3d.preprocess import PreprocessConfig
from brain3d.train.phases import DEFAULT_PHASES, PHASE_ORDER, PhaseConfig

PROFILES = ("paper", "tiny")
TINY = "tiny"


class DataConfig(BaseModel):
    """Intensity scaling (the grid and sequences come from the model section) and laterality augmentation."""

    model_config = ConfigDict(extra="forbid")

    low: float = 1.0
    high: float = 99.0
    nonzero: bool = False
    scaling: Literal["percentile", "median"] = "percentile"  # see brain3d.preprocess.PreprocessConfig
    flip: bool = True  # mirror volume + swap left/right in the report, together
    flip_p: float = Field(0.5, ge=0, le=1)
    in_memory: bool = True  # keep preprocessed volumes / cached features in RAM after the first read


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # phases with inputs 'features' read the encoder-feature cache
    dir: str | None = None  # default RUN_DIR/feature-cache; a shared folder serves several runs


class DiagnosticsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_new_tokens: int = Field(64, ge=1)


class TrainConfig(BaseModel):
    """Everything a training run needs besides the manifest and the output folder."""

    model_config = ConfigDict(extra="forbid")

    profile: str = "custom"
    seed: int = 42
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU (weights and autocast)
    max_grad_norm: float | None = Field(1.0, gt=0)
    vision_model: str | None = None
    language_model: str | None = None
    model: dict[str, Any] = Field(default_factory=dict)
    data: DataConfig = Field(default_factory=DataConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    phases: dict[str, PhaseConfig] = Field(default_factory=dict)
    eval_batch_size: int = Field(8, ge=1)
    threads: int | None = Field(None, ge=1)  # torch CPU threads per process; None = torch's default

    @model_validator(mode="before")
    @classmethod
    def _merge_phase_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = data.get("phases") or {}
            unknown = [k for k in given if str(k).lower() not in PHASE_ORDER]
            if unknown:
                raise ValueError(f"unknown phase {unknown[0]!r} in phases; known: {', '.join(PHASE_ORDER)}")
            given = {str(k).lower(): v for k, v in given.items()}
            data = {**data, "phases": {n: {**DEFAULT_PHASES[n], **(given.get(n) or {})} for n in PHASE_ORDER}}
        return data

    @field_validator("model")
    @classmethod
    def _model_settings(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in ("vision_model", "language_model"):
            if key in v:
                raise ValueError(f"set {key} at the top level of the config, not inside model")
        Brain3DConfig.from_dict({"vision_model": "", "language_model": "", **v})  # validates names and values
        return v

    def brain3d_config(self, vision_model: str | Path, language_model: str | Path) -> Brain3DConfig:
        return Brain3DConfig.from_dict({**self.model, "vision_model": str(vision_model),
                                        "language_model": str(language_model)})

    def preprocess(self) -> PreprocessConfig:
        size = self.brain3d_config("", "").image_size
        return PreprocessConfig(size=tuple(size), low=self.data.low, high=self.data.high, nonzero=self.data.nonzero,
                                scaling=self.data.scaling)

    def sequences(self) -> list[str]:
        return list(self.brain3d_config("", "").sequences)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(source: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """A packaged profile name ('paper', 'tiny') or a YAML path, then `key.sub=value` overrides
    (values parsed as YAML: `phases.2a.epochs=3`, `model.compressor=seq_pool`)."""
    text, origin = _config_text(source)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"is not valid YAML ({str(exc).splitlines()[0]})", origin) from None
    if not isinstance(data, dict):
        raise ConfigError("must hold a mapping of settings", origin)
    for item in overrides:
        _apply_override(data, item)
    return validate_config(data, origin)


def validate_config(data: dict[str, Any], origin: str | Path = "config") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"setting {where}: {err['msg']}", origin) from None
    except ConfigError as exc:
        raise ConfigError(str(exc), origin) from None


def _config_text(source: str | Path) -> tuple[str, str]:
    name = str(source)
    if name in PROFILES:
        res = resources.files("brain3d.configs").joinpath(f"{name}.yaml")
        return res.read_text(encoding="utf-8"), f"brain3d/configs/{name}.yaml"
    path = Path(name)
    if not path.is_file():
        raise ConfigError(f"config not found; give a YAML file or one of the profiles {', '.join(PROFILES)}", path)
    return path.read_text(encoding="utf-8"), str(path)


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {item!r} names no setting")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    node[parts[-1]] = yaml.safe_load(value)
