"""Brain3D: volume -> Encoder3D -> compressor -> gated projector -> K soft tokens -> Gemma-3 -> report.

One model object serves all three training phases; which parameters train is said by name through
`param_groups()` / `set_trainable()`:
  stem, depth_pos   the inflated 3D patch stem and the learnable depth embedding (phase 1)
  compressor        the perceiver's parameters (empty for the pooling compressors)
  projector, gate   the 2-layer MLP and the scalar gate `vis_scale`
  lora              LoRA adapters inside the language model only (phase 2B, after `add_lora`)
  regions           optional (config.region_tokens): the per-token tissue read-out and its region tokens
                    (model/regions.py), trained in phase 1 on lesion masks
  findings_head     optional (config.findings_head): a per-word scale and bias that turn the soft tokens'
                    similarity to the LM's *own embeddings* of the finding words (FINDING_LABELS: lesion, normal,
                    left, right, lobes, findings) into logits, trained in phase 1 on labels read from each report.
                    It asks the soft tokens to *name* the scan's findings in the LM's vocabulary — what a
                    vision-language LM reads in its image slots — and, unlike the report-embedding contrast
                    (a report and its left/right twin embed at cosine 0.9999), it tells left from right
The ViT blocks and the LM's own weights never train. Encoder features can be cached and passed as
`features=` to `forward`, `generate` and `visual_tokens`, so phases 2A/2B need not recompute the frozen ViT.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from brain3d import quiet
from brain3d.anatomy.rules import UNKNOWN_LABEL
from brain3d.errors import CheckpointError, ConfigError, TrainingError
from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.model import backbones
from brain3d.model.compressor import build_compressor
from brain3d.model.config import Brain3DConfig, LoraConfig
from brain3d.model.encoder3d import Encoder3D
from brain3d.model.projector import Projector, embedding_rms
from brain3d.model.regions import RegionReadout, patch_stats, region_loss, token_fractions
from brain3d.model.prompt import PromptLayout, build_layout, report_ids

CHECKPOINT_FORMAT = "brain3d"
CHECKPOINT_VERSION = 1
WEIGHTS_FILE = "brain3d.safetensors"
ADAPTER_DIR = "adapter"
GROUPS = ("stem", "depth_pos", "compressor", "projector", "gate", "lora", "findings_head", "regions")
# The words the optional findings head scores: lesion (any pathology asserted), normal (none), the scorer's side,
# lobe and finding keywords.
FINDING_LABELS = ("lesion", "normal", "left", "right", "frontal", "parietal", "temporal", "occipital",
                  "edema", "necrosis", "enhancement", "compression")

# Decoding profiles. 'paper' = FACTS.md (sampling, temperature 0.1, top-p 0.9, repetition penalty 1.2,
# no-repeat-ngram 3); top_k=0 so that a checkpoint's own generation_config (MedGemma: top_k=64) does not
# leak in. 'greedy' keeps the same penalties without sampling, for deterministic evaluation; its sampling
# settings are the neutral ones, because transformers fills every unset one from the checkpoint's
# generation_config (MedGemma: top_k 64, top_p 0.95) and then warns that greedy decoding ignores them.
DECODING: dict[str, dict[str, Any]] = {
    "greedy": dict(do_sample=False, num_beams=1, repetition_penalty=1.2, no_repeat_ngram_size=3,
                   temperature=1.0, top_k=50, top_p=1.0),
    "paper": dict(do_sample=True, num_beams=1, temperature=0.1, top_p=0.9, top_k=0, repetition_penalty=1.2,
                  no_repeat_ngram_size=3),
}


@dataclass
class Brain3DOutput:
    """loss: mean next-token cross-entropy over report tokens; logits (B, T, V) and labels (B, T) over the
    whole input sequence (labels -100 on vision, prompt and padding positions); attention_mask (B, T)."""

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor


class Brain3D(nn.Module):
    """Built by `Brain3D.build(config)` from local base-model folders or by `Brain3D.from_pretrained(ckpt)`;
    the constructor itself takes already-built modules (e.g. on the meta device for wiring checks)."""

    def __init__(self, config: Brain3DConfig, vit: nn.Module, lm: nn.Module, tokenizer=None) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder3D(
            vit, config.in_channels, config.image_size, config.kernel_depth, config.depth_stride,
            config.depth_padding, config.inflate_init, config.pos_embed,
        )
        device = self.encoder.stem.weight.device
        self.compressor = build_compressor(
            config.compressor, config.num_tokens, self.encoder.dim, config.pool_grid, config.perceiver_layers
        ).to(device)
        self.stats_dim = 3 * config.in_channels if config.region_tokens else 0  # window statistics after the features
        self.regions = (RegionReadout(self.encoder.dim, self.compressor.out_dim, self.stats_dim).to(device)
                        if config.region_tokens else None)
        embedding = lm.get_input_embeddings()
        self.projector = Projector(self.compressor.out_dim, embedding.embedding_dim, config.soft_token_scale,
                                   config.feature_norm, self.num_vision_tokens).to(device)
        self.projector.text_rms = embedding_rms(embedding, embedding.num_embeddings).to(device)
        self.findings_head = FindingsHead(len(FINDING_LABELS)).to(device) if config.findings_head else None
        if self.findings_head is not None:
            if tokenizer is None:
                raise ConfigError("the findings head needs the language model's tokenizer (its words' embeddings)")
            self.findings_head.words = word_embeddings(embedding, tokenizer, FINDING_LABELS).to(device)
        self.lm = lm
        self.tokenizer = tokenizer
        self.checkpoint_extra: dict = {}  # the `extra` of the checkpoint this model was loaded from
        self.layout: PromptLayout | None = None
        if tokenizer is not None:
            if len(tokenizer) > embedding.num_embeddings:
                raise CheckpointError(
                    f"the tokenizer has {len(tokenizer)} tokens but the language model only {embedding.num_embeddings}",
                    config.language_model,
                )
            self.layout = build_layout(tokenizer, config.prompt, config.prompt_format)
        if config.gradient_checkpointing:
            for model in (vit, lm):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.set_trainable(())

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def build(cls, config: Brain3DConfig, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Brain3D":
        """Load the base models named in `config` from their local folders and assemble a fresh Brain3D
        (brain3d tensors initialised: stem inflated, depth embedding zero, projector Xavier, gate 1.0).
        Like Hugging Face models it comes back in eval mode with nothing trainable; see `set_trainable`."""
        vit = backbones.load_vision_tower(config.vision_model, dtype=dtype, device=device)
        lm = backbones.load_language_model(config.language_model, dtype=dtype, device=device, load_4bit=config.load_4bit)
        tokenizer = backbones.load_tokenizer(config.language_model)
        config = config.replace(vision_model=str(Path(config.vision_model).resolve()),
                                language_model=str(Path(config.language_model).resolve()))
        return cls(config, vit, lm, tokenizer).eval()

    @classmethod
    def from_pretrained(
        cls,
        ckpt_dir: str | Path,
        vision_model: str | None = None,
        language_model: str | None = None,
        device: torch.device | str | None = None,
        load_4bit: bool | None = None,
        dtype: torch.dtype | None = None,
    ) -> "Brain3D":
        """Rebuild a saved model: base models from the paths in its config.json (or the overrides), then every
        trained brain3d tensor from brain3d.safetensors and the LoRA adapter from adapter/ when present."""
        from safetensors.torch import load_file

        ckpt = Path(ckpt_dir)
        config, extra, has_lora = read_checkpoint(ckpt)
        changes: dict[str, Any] = {}
        if vision_model is not None:
            changes["vision_model"] = str(vision_model)
        if language_model is not None:
            changes["language_model"] = str(language_model)
        if load_4bit is not None:
            changes["load_4bit"] = bool(load_4bit)
        model = cls.build(config.replace(**changes), device=device, dtype=dtype)
        if has_lora:
            if not (ckpt / ADAPTER_DIR).is_dir():
                raise CheckpointError("config.json says the model has LoRA but adapter/ is missing", ckpt)
            model.load_adapter(ckpt / ADAPTER_DIR)
        weights = ckpt / WEIGHTS_FILE
        if not weights.is_file():
            raise CheckpointError(f"has no {WEIGHTS_FILE}", ckpt)
        model.load_trainable_state_dict(load_file(str(weights)), include_lora=False)
        model.checkpoint_extra = extra
        return model.eval()

    def save_pretrained(self, ckpt_dir: str | Path, extra: dict | None = None) -> Path:
        """Write ckpt_dir atomically: config.json (model config + `extra`, e.g. the resolved training config),
        brain3d.safetensors (every trainable brain3d tensor) and adapter/ (PEFT) when the LM has LoRA."""
        from safetensors.torch import save_file

        state = {k: v.detach().to("cpu").contiguous() for k, v in self.trainable_state_dict(include_lora=False).items()}
        with atomic_dir(ckpt_dir) as tmp:
            atomic_write_json(tmp / "config.json", {
                "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "model": self.config.to_dict(),
                "has_lora": self.has_lora, "extra": extra or {},
            })
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
            if self.has_lora:
                self.lm.save_pretrained(str(tmp / ADAPTER_DIR))
        return Path(ckpt_dir)

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return self.encoder.stem.weight.device

    @property
    def lm_dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    @property
    def num_vision_tokens(self) -> int:
        """K compressed tokens, plus one per tissue class with region tokens."""
        return self.compressor.num_tokens + (self.regions.num_tokens if self.regions is not None else 0)

    @property
    def has_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.lm, PeftModel)

    # ----------------------------------------------------------------------------------------------- vision path
    @property
    def feature_dim(self) -> int:
        """Width of `encode_volume`'s features: dv, plus 3 C window statistics with region tokens."""
        return self.encoder.dim + self.stats_dim

    def encode_volume(self, volumes: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) float in [0, 1] -> (B, N, dv) encoder patch features (normalisation inside); with region
        tokens (B, N, dv + 3 C): each token's stem-window mean / min / max follow its features (model/regions.py)."""
        feats = self.encoder(volumes)  # (B, N, dv)
        if self.regions is None:
            return feats
        cfg, p = self.config, self.encoder.patch_size
        stats = patch_stats(volumes.to(feats.device, torch.float32), (cfg.kernel_depth, p, p), (cfg.depth_stride, p, p),
                            (cfg.depth_padding, 0, 0))  # (B, N, 3 C)
        return torch.cat([feats, stats.to(feats.dtype)], dim=-1)  # (B, N, dv + 3 C)

    def visual_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, dv) features -> (B, K, dlm) soft tokens: compress, project, scale to the LM's embedding scale,
        gate (see projector.py); returned in the LM's dtype."""
        return self.projector.project(self.compressed(features)).to(self.lm_dtype)  # (B, K, dlm)

    def compressed(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, dv) features -> (B, K, dc) compressed tokens as the projector's MLP reads them (standardised)."""
        if features.dim() != 3 or features.shape[1] != self.encoder.num_tokens or features.shape[2] != self.feature_dim:
            raise ConfigError(
                f"features of shape {tuple(features.shape)} do not match this model's encoder "
                f"({self.encoder.num_tokens} tokens of width {self.feature_dim} on grid {self.encoder.grid}); were they "
                "cached with another config?"
            )
        x = features.to(self.device, torch.float32)
        z = self.compressor(x[..., : self.encoder.dim], self.encoder.grid)  # (B, K, dc)
        if self.regions is not None:
            z = torch.cat([z, self.regions(x, self.encoder.grid)], dim=1)  # (B, K + R, dc)
        return self.projector.standardize(z)

    def region_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Segmentation loss of the region read-out: (B, N, dv) features against (B, D, H, W) model-grid BraTS
        labels (`anatomy.rules.UNKNOWN_LABEL` everywhere for a subject without a mask: it does not count)."""
        if self.regions is None:
            raise ConfigError("this model has no region tokens; set region_tokens: true in the model config")
        enc = self.encoder
        stride = (self.config.depth_stride, enc.patch_size, enc.patch_size)
        kernel = (self.config.kernel_depth, enc.patch_size, enc.patch_size)
        labels = labels.to(self.device)
        known = (labels != UNKNOWN_LABEL).flatten(1).all(dim=1)  # (B,)
        targets = token_fractions(labels.masked_fill(labels == UNKNOWN_LABEL, 0), enc.grid, kernel, stride)  # (B, N, R)
        logits = self.regions.logits(features.to(self.device, torch.float32))  # (B, N, R)
        return region_loss(logits, targets, known)

    def findings_logits(self, soft: torch.Tensor) -> torch.Tensor:
        """Soft tokens (B, K, dlm) -> (B, len(FINDING_LABELS)) logits (see FindingsHead)."""
        if self.findings_head is None:
            raise ConfigError("this model has no findings head; set findings_head: true in the model config")
        return self.findings_head(soft)

    def volume_embedding(self, features: torch.Tensor) -> torch.Tensor:
        """(B, dlm) mean of the soft tokens (phase 1's volume side, same path as phase 2)."""
        return self.visual_tokens(features).float().mean(dim=1)

    def _vision(self, volumes: torch.Tensor | None, features: torch.Tensor | None) -> torch.Tensor:
        if (volumes is None) == (features is None):
            raise ConfigError("pass exactly one of volumes= or features=")
        return self.visual_tokens(features if features is not None else self.encode_volume(volumes))

    # ----------------------------------------------------------------------------------------------- language
    def _layout(self) -> PromptLayout:
        if self.layout is None:
            raise ConfigError("this Brain3D has no tokenizer; build it with Brain3D.build or from_pretrained")
        return self.layout

    def _embed_ids(self, ids: list[int] | torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long, device=self.lm.get_input_embeddings().weight.device)
        return self.lm.get_input_embeddings()(ids)  # Gemma scales by sqrt(hidden) here

    def _prefix(self, vis: torch.Tensor) -> torch.Tensor:
        """[before][vision][after] embeddings, (B, P1 + K + P2, dlm)."""
        layout, b = self._layout(), vis.shape[0]
        before = self._embed_ids(layout.before).unsqueeze(0).expand(b, -1, -1)
        after = self._embed_ids(layout.after).unsqueeze(0).expand(b, -1, -1)
        return torch.cat([before, vis.to(before.device), after], dim=1)

    def build_inputs(self, reports: list[str], vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs_embeds (B, T, dlm), attention_mask (B, T), labels (B, T)) for teacher forcing: reports are
        right-padded; labels are the report ids (+ end id) and -100 on vision, prompt and padding."""
        layout = self._layout()
        if len(reports) != vis.shape[0]:
            raise ConfigError(f"{len(reports)} reports for {vis.shape[0]} volumes")
        prefix = self._prefix(vis)  # (B, P, dlm)
        b, p, dev = vis.shape[0], prefix.shape[1], prefix.device
        ids = report_ids(self.tokenizer, reports, layout, self.config.max_report_tokens)
        rep, rep_mask = right_pad(ids, self.tokenizer.pad_token_id, dev)  # (B, R) each
        embeds = torch.cat([prefix, self._embed_ids(rep)], dim=1)  # (B, P + R, dlm)
        mask = torch.cat([torch.ones((b, p), dtype=torch.long, device=dev), rep_mask], dim=1)  # (B, P + R)
        labels = torch.cat([torch.full((b, p), -100, dtype=torch.long, device=dev),
                            rep.masked_fill(rep_mask == 0, -100)], dim=1)  # (B, P + R)
        return embeds, mask, labels

    def forward(self, reports: list[str], volumes: torch.Tensor | None = None, features: torch.Tensor | None = None) -> Brain3DOutput:
        """Masked next-token loss of `reports` given volumes (or cached encoder `features`)."""
        embeds, mask, labels = self.build_inputs(reports, self._vision(volumes, features))
        out = self.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False)
        return Brain3DOutput(out.loss, out.logits, labels, mask)

    @torch.no_grad()
    def generate(
        self,
        volumes: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
        profile: str = "greedy",
        max_new_tokens: int = 256,
        min_new_tokens: int = 10,
        seed: int | None = None,
    ) -> list[str]:
        """Batched report generation; returns only the new text of each volume (prompt never included)."""
        from transformers import GenerationConfig

        if profile not in DECODING:
            raise ConfigError(f"decoding profile {profile!r} is not one of {', '.join(DECODING)}")
        layout = self._layout()
        was_training = self.training
        self.eval()
        try:
            prefix = self._prefix(self._vision(volumes, features))  # (B, P, dlm)
            mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=prefix.device)
            gen = GenerationConfig(
                max_new_tokens=max_new_tokens, min_new_tokens=min(min_new_tokens, max_new_tokens),
                eos_token_id=layout.stop, pad_token_id=self.tokenizer.pad_token_id,
                bos_token_id=self.tokenizer.bos_token_id, **DECODING[profile],
            )
            # a seed makes sampling reproducible without touching the caller's RNG stream; no seed = fresh samples
            devices = [prefix.device.index or 0] if prefix.device.type == "cuda" else []
            rng = torch.random.fork_rng(devices=devices) if seed is not None else contextlib.nullcontext()
            # penalties apply to the new tokens only (there are no prompt ids): intended, as in the reference
            with rng, quiet.ignoring(r"Passing `(repetition_penalty|no_repeat_ngram_size)`"):
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.lm.generate(inputs_embeds=prefix, attention_mask=mask, generation_config=gen)
        finally:
            self.train(was_training)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    @torch.no_grad()
    def text_embedding(self, reports: list[str], source: str = "hidden") -> torch.Tensor:
        """(B, dlm) float32 embedding of each report by the frozen LM (adapters disabled), no prompt:
        'hidden' = mean of the final hidden states over the report tokens (bos is fed, not pooled);
        'input' = mean of the (scaled) input embeddings of the report tokens."""
        if source not in ("hidden", "input"):
            raise ConfigError(f"text embedding source {source!r} is not one of hidden, input")
        self._layout()
        tok = self.tokenizer
        encoded = tok(list(reports), add_special_tokens=False)["input_ids"]
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        seqs = [bos + list(x)[: self.config.max_report_tokens] for x in encoded]
        ids, mask = right_pad(seqs, tok.pad_token_id, self.lm.get_input_embeddings().weight.device)  # (B, T)
        pool = mask.clone()
        pool[:, : len(bos)] = 0  # (B, T) report tokens only
        if source == "input":
            h = self._embed_ids(ids)
        else:
            with self._adapters_disabled():
                h = self._text_model()(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, dlm)
        w = pool.unsqueeze(-1).to(torch.float32)
        return (h.float() * w).sum(1) / w.sum(1).clamp_min(1.0)

    def _text_model(self) -> nn.Module:
        base = self.lm.get_base_model() if self.has_lora else self.lm
        return base.model

    def _adapters_disabled(self):
        return self.lm.disable_adapter() if self.has_lora else contextlib.nullcontext()

    # ----------------------------------------------------------------------------------------------- LoRA
    def add_lora(self, cfg: LoraConfig | None = None) -> None:
        """PEFT LoRA on the LM's decoder projections named in cfg.targets (attention q/k/v/o by default),
        never on a vision tower: the target regex is anchored at the text decoder's layers. Works on a 4-bit
        LM (QLoRA: adapters on Linear4bit, kept in float32)."""
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model

        if self.has_lora:
            raise TrainingError("the language model already has LoRA adapters")
        cfg = cfg or self.config.lora or LoraConfig()
        peft_cfg = PeftLoraConfig(
            r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none", task_type="CAUSAL_LM",
            target_modules=lora_target_regex(cfg.targets),
        )
        with _quiet_peft():
            self.lm = get_peft_model(self.lm, peft_cfg)
        self.config.lora = cfg
        self.set_trainable(())

    def load_adapter(self, adapter_dir: str | Path) -> None:
        """Attach a saved PEFT LoRA adapter (trainable, so that training can resume)."""
        from peft import PeftModel

        if self.has_lora:
            raise TrainingError("the language model already has LoRA adapters")
        with backbones.quiet_transformers(), _quiet_peft():
            self.lm = PeftModel.from_pretrained(self.lm, str(adapter_dir), is_trainable=True)
        self.set_trainable(())

    # ----------------------------------------------------------------------------------------------- parameters
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every parameter brain3d may train, by group (see the module docstring)."""
        return {
            "stem": list(self.encoder.stem.parameters()),
            "depth_pos": [self.encoder.depth_pos] if self.encoder.depth_pos is not None else [],
            "compressor": list(self.compressor.parameters()),
            "projector": list(self.projector.fc1.parameters()) + list(self.projector.fc2.parameters()),
            "gate": [self.projector.vis_scale],
            "lora": [p for n, p in self.lm.named_parameters() if "lora_" in n],
            "findings_head": list(self.findings_head.parameters()) if self.findings_head is not None else [],
            "regions": list(self.regions.parameters()) if self.regions is not None else [],
        }

    def set_trainable(self, groups: Iterable[str]) -> int:
        """Freeze everything, then unfreeze the named groups; returns the number of trainable parameters."""
        groups = list(groups)
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ConfigError(f"unknown parameter group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
        self.requires_grad_(False)
        all_groups = self.param_groups()
        for g in groups:
            for p in all_groups[g]:
                p.requires_grad_(True)
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _trainable_names(self, include_lora: bool) -> dict[str, torch.Tensor]:
        """Trained parameters plus the tensors learned alongside them (the projector's feature statistics)."""
        wanted = {id(p) for g, ps in self.param_groups().items() if include_lora or g != "lora" for p in ps}
        names = {n: p for n, p in self.named_parameters() if id(p) in wanted}
        names.update({n: b for n, b in self.named_buffers() if n.startswith("projector.feature_norm.")})
        return names

    def trainable_state_dict(self, include_lora: bool = True) -> dict[str, torch.Tensor]:
        """{name: tensor} of every parameter in param_groups() (LoRA too unless include_lora=False)."""
        return {n: p.detach() for n, p in self._trainable_names(include_lora).items()}

    @torch.no_grad()
    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], include_lora: bool = True) -> None:
        """Copy tensors from `trainable_state_dict()` output; every expected tensor must be present with its
        shape (CheckpointError otherwise). LoRA tensors are expected when include_lora and the LM has LoRA."""
        params = self._trainable_names(include_lora)
        missing = sorted(set(params) - set(state))
        unknown = sorted(set(state) - set(params))
        if missing or unknown:
            raise CheckpointError(
                f"brain3d weights do not match this model: missing {missing[:5]}, unexpected {unknown[:5]}"
            )
        for name, p in params.items():
            t = state[name]
            if tuple(t.shape) != tuple(p.shape):
                raise CheckpointError(f"brain3d weight {name} has shape {tuple(t.shape)}, the model {tuple(p.shape)}")
            p.copy_(t.to(device=p.device, dtype=p.dtype))


class FindingsHead(nn.Module):
    """(B, K, dlm) soft tokens -> (B, L) logits: for each finding word, the soft tokens' best cosine similarity to
    the LM's embedding of that word (a smooth maximum over tokens: a finding is named when some slot names it),
    times a learned scale plus a learned bias. `words` (L, dlm) is a frozen copy of the LM's input embeddings of
    the words, set by the model; the head has 2 L parameters."""

    def __init__(self, num_labels: int, sharpness: float = 10.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((num_labels,), 10.0))
        self.bias = nn.Parameter(torch.zeros(num_labels))
        self.sharpness = sharpness
        self.register_buffer("words", torch.zeros(num_labels, 1), persistent=False)

    def forward(self, soft: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(soft.float(), dim=-1) @ F.normalize(self.words.float(), dim=-1).T  # (B, K, L)
        best = torch.logsumexp(self.sharpness * cos, dim=1) / self.sharpness  # (B, L) smooth max over tokens
        return self.scale * best + self.bias


@torch.no_grad()
def word_embeddings(embedding: nn.Module, tokenizer, words: Iterable[str]) -> torch.Tensor:
    """(L, dlm) the LM's input embedding (as the LM scales it) of each word as it appears mid-sentence (after a
    space), averaged over its tokens when the tokenizer splits it."""
    rows = []
    device = embedding.weight.device
    for w in words:
        ids = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        rows.append(embedding(torch.tensor(ids, device=device)).float().mean(0))
    return torch.stack(rows)


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """PEFT 0.21 reads a transformers property deprecated in 5.x; its FutureWarning is not ours to act on."""
    with quiet.ignoring(r".*is_gradient_checkpointing.*", FutureWarning):
        yield


def right_pad(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and their (B, T) attention mask."""
    t = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return ids.to(device), mask.to(device)


def lora_target_regex(targets: Iterable[str]) -> str:
    """PEFT target regex matching only the text decoder's projections: model.layers.N.(self_attn|mlp).NAME."""
    names = "|".join(sorted(set(targets)))
    return rf"^model\.layers\.\d+\.(self_attn|mlp)\.({names})$"


def read_checkpoint(ckpt_dir: str | Path) -> tuple[Brain3DConfig, dict, bool]:
    """(model config, extra, has_lora) from a checkpoint's config.json, without loading any weights."""
    ckpt = Path(ckpt_dir)
    cfg_file = ckpt / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError("is not a brain3d checkpoint (no config.json)", ckpt)
    try:
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"config.json is not valid JSON ({exc.msg})", cfg_file) from exc
    if meta.get("format") != CHECKPOINT_FORMAT or "model" not in meta:
        raise CheckpointError("config.json is not a brain3d checkpoint config", cfg_file)
    if meta.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint format {meta['format_version']} is newer than this brain3d", cfg_file)
    return Brain3DConfig.from_dict(meta["model"]), meta.get("extra", {}), bool(meta.get("has_lora", False))
