"""Model configuration: one dataclass that says everything needed to rebuild a Brain3D model.

A checkpoint's `config.json` is `Brain3DConfig.to_dict()`; base models are referenced by local folder and
can be overridden at load time. Nothing here holds weights or dimensions of the base models: those are read
from the base models' own `config.json` (see `backbones.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from brain3d.errors import ConfigError

DEFAULT_PROMPT = "Generate a radiology report for this brain MRI FLAIR scan"
# The reference code's prompt, verbatim (trailing ". \n" included), used by the parity preset.
REFERENCE_PROMPT = "Generate a radiology report for this brain MRI FLAIR scan. \n"

INFLATE_INITS = ("mean", "center")
POS_EMBEDS = ("pretrained", "reference")
COMPRESSORS = ("grid_pool", "grid_attn", "mirror_pool", "mirror_attn", "seq_pool", "perceiver")
PROMPT_FORMATS = ("reference", "chat")
SOFT_TOKEN_SCALES = ("text_rms", "none")
FEATURE_NORMS = ("running", "none")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class LoraConfig:
    """LoRA recipe for the language model's attention projections (FACTS.md: r=16, alpha=32, dropout 0.05)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = LORA_TARGETS

    def to_dict(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LoraConfig":
        _check_keys(cls, d, "lora")
        d = dict(d)
        if "targets" in d:
            d["targets"] = tuple(d["targets"])
        return cls(**d)


@dataclass
class Brain3DConfig:
    """Everything that defines a Brain3D model (see DESIGN.md for the pipeline).

    vision_model: local folder of a `SiglipModel` (MedSigLIP) or of a Gemma-3 multimodal model (its tower).
    language_model: local folder of a Gemma-3 multimodal model (MedGemma) or of a Gemma-3 causal LM.
    sequences: MRI sequences fed as input channels, in this order (in_channels = len(sequences)).
    image_size: (D, H, W) of the model-space volume.
    kernel_depth / depth_stride / depth_padding: the 3D patch stem along D (the 2D patch size is the ViT's).
    inflate_init: 'mean' (2D kernel repeated, divided by kernel depth) or 'center' (centre frame only).
    pos_embed: 'pretrained' (2D table resampled + zero-init learnable depth embedding) or 'reference'
        (the reference code's fixed linspace code).
    compressor: 'grid_pool' (keeps the D x H x W layout), 'grid_attn' (its cells, learned token weights),
    'mirror_pool' (mirrored cell pairs: pair mean + left-minus-right difference, side in token content),
    'mirror_attn' (the same over grid_attn's learned-weight cells),
    'seq_pool' (reference), 'perceiver'.
    num_tokens: K visual tokens given to the LM. pool_grid: (gd, gh, gw) for grid_pool, None = derived from K.
    soft_token_scale: 'text_rms' brings every soft token to the RMS of the LM's scaled text embeddings;
        'none' leaves the projector output as is (reference behaviour).
    feature_norm: 'running' standardises compressed tokens per (token, channel) with running statistics of
        the training volumes before the projector (see projector.py); 'none' = reference.
    prompt_format: 'reference' ([vision][bos + prompt][report]) or 'chat' (Gemma chat turn around it).
    max_report_tokens: reports longer than this are truncated for the loss.
    load_4bit: NF4 double-quant 4-bit LM (QLoRA). gradient_checkpointing: activation checkpointing in
        both transformers.  lora: the LoRA recipe applied by `Brain3D.add_lora` (phase 2B); None = default.
    findings_head: a linear read-out of structured findings from the compressed tokens, trained in phase 1 on
        labels read from the reports (`phases.1.findings_weight`); it never feeds the language model.
    region_tokens: append one soft token per tissue class (whole tumour, core, necrotic core, edema, enhancing;
        model/regions.py) pooled by a per-token segmentation read-out of the encoder, trained in phase 1 on the
        subjects' lesion masks (`phases.1.region_weight`); no mask is needed at inference. The LM then sees
        num_tokens + 5 soft tokens.
    """

    vision_model: str
    language_model: str
    sequences: list[str] = field(default_factory=lambda: ["flair"])
    image_size: tuple[int, int, int] = (64, 128, 128)
    kernel_depth: int = 2
    depth_stride: int = 2
    depth_padding: int = 0
    inflate_init: str = "mean"
    pos_embed: str = "pretrained"
    compressor: str = "grid_pool"
    num_tokens: int = 32
    pool_grid: tuple[int, int, int] | None = None
    perceiver_layers: int = 2
    soft_token_scale: str = "text_rms"
    feature_norm: str = "running"
    prompt: str = DEFAULT_PROMPT
    prompt_format: str = "reference"
    max_report_tokens: int = 256
    load_4bit: bool = False
    gradient_checkpointing: bool = False
    lora: LoraConfig | None = None
    findings_head: bool = False
    region_tokens: bool = False

    def __post_init__(self) -> None:
        self.sequences = list(self.sequences)
        self.image_size = tuple(int(s) for s in self.image_size)  # type: ignore[assignment]
        if self.pool_grid is not None:
            self.pool_grid = tuple(int(g) for g in self.pool_grid)  # type: ignore[assignment]
        if isinstance(self.lora, dict):
            self.lora = LoraConfig.from_dict(self.lora)
        self.validate()

    @property
    def in_channels(self) -> int:
        return len(self.sequences)

    def validate(self) -> None:
        """Raise ConfigError with one sentence for the first invalid setting."""
        choices = {
            "inflate_init": INFLATE_INITS, "pos_embed": POS_EMBEDS, "compressor": COMPRESSORS,
            "prompt_format": PROMPT_FORMATS, "soft_token_scale": SOFT_TOKEN_SCALES,
            "feature_norm": FEATURE_NORMS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"model setting {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not self.sequences:
            raise ConfigError("model setting sequences is empty; name at least one MRI sequence, e.g. ['flair']")
        if len(self.image_size) != 3 or min(self.image_size) < 1:
            raise ConfigError(f"model setting image_size={self.image_size} must be three positive sizes (D, H, W)")
        if self.kernel_depth < 1 or self.depth_stride < 1 or self.depth_padding < 0:
            raise ConfigError(
                f"model settings kernel_depth={self.kernel_depth}, depth_stride={self.depth_stride}, "
                f"depth_padding={self.depth_padding} must be >= 1, >= 1 and >= 0"
            )
        if self.num_tokens < 1:
            raise ConfigError(f"model setting num_tokens={self.num_tokens} must be >= 1")
        if self.pool_grid is not None:
            if len(self.pool_grid) != 3 or self.pool_grid[0] * self.pool_grid[1] * self.pool_grid[2] != self.num_tokens:
                raise ConfigError(
                    f"model setting pool_grid={self.pool_grid} must be three sizes whose product is num_tokens={self.num_tokens}"
                )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["pool_grid"] = list(self.pool_grid) if self.pool_grid is not None else None
        d["lora"] = self.lora.to_dict() if self.lora is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Brain3DConfig":
        _check_keys(cls, d, "model")
        d = dict(d)
        if d.get("lora") is not None:
            d["lora"] = LoraConfig.from_dict(d["lora"])
        return cls(**d)

    def replace(self, **changes: Any) -> "Brain3DConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def parity(cls, vision_model: str, language_model: str, **overrides: Any) -> "Brain3DConfig":
        """The reference code's settings: kernel depth 2, depth stride 1, padding 1 (65 x 81 = 5,265 tokens
        at 64x128x128), sequence pooling, its fixed position code, raw (unscaled) soft tokens and its prompt."""
        settings: dict[str, Any] = dict(
            kernel_depth=2, depth_stride=1, depth_padding=1, pos_embed="reference", compressor="seq_pool",
            soft_token_scale="none", feature_norm="none", prompt=REFERENCE_PROMPT, prompt_format="reference",
        )
        settings.update(overrides)
        return cls(vision_model=vision_model, language_model=language_model, **settings)


def _check_keys(cls: type, d: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
