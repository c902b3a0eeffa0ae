"""Load the base models from local folders only, failing loudly when anything is off.

* Vision tower: a `SiglipVisionModel` from a `SiglipModel` folder (MedSigLIP), a SigLIP vision folder, or the
  vision tower inside a Gemma-3 multimodal folder (MedGemma).
* Language model: a text-only `Gemma3ForCausalLM` from a Gemma-3 multimodal folder or a Gemma-3 causal-LM
  folder. `generate(inputs_embeds=...)` needs the text-only class, and loading that class from a multimodal
  checkpoint silently leaves every weight random unless the keys are mapped (FACTS.md); the mapping is
  derived from the checkpoint's own key names, and any weight left uninitialised raises CheckpointError.
* Precision: float32 on CPU, bf16 on GPU, or a 4-bit NF4 LM (double quantisation, bf16 compute) via
  bitsandbytes, which also runs on CPU.
Nothing downloads: every path must be an existing folder.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Iterator

import torch

from brain3d import quiet
from brain3d.errors import CheckpointError

GEMMA3_TYPES = ("gemma3", "gemma3_text")
SIGLIP_TYPES = ("siglip", "siglip_vision_model", "gemma3")
PATCH_KEY = "embeddings.patch_embedding.weight"
EMBED_KEY = "embed_tokens.weight"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and config warnings: brain3d checks the loading itself (`-v` shows them)."""
    from transformers.utils import logging as hf_logging

    if quiet.is_verbose():
        yield
        return

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def default_dtype(device: torch.device | str | None) -> torch.dtype:
    """bf16 on GPU, float32 elsewhere."""
    return torch.bfloat16 if torch.device(device or "cpu").type == "cuda" else torch.float32


def read_model_config(path: str | Path) -> dict:
    """The folder's config.json as a dict (CheckpointError if the folder or file is missing)."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError("base-model folder does not exist (brain3d reads base models from local folders only)", folder)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError("has no config.json; is it a Hugging Face model folder?", folder)
    try:
        return json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"config.json is not valid JSON ({exc.msg})", cfg_file) from exc


def checkpoint_keys(path: str | Path) -> list[str]:
    """Tensor names stored in the folder's safetensors file(s), single or sharded."""
    from safetensors import safe_open

    folder = Path(path)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return sorted(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    single = folder / "model.safetensors"
    if single.is_file():
        with safe_open(str(single), "pt") as fh:
            return sorted(fh.keys())
    raise CheckpointError("has no model.safetensors or model.safetensors.index.json (only safetensors are read)", folder)


def _prefix_of(keys: list[str], suffix: str, folder: Path, what: str, exclude: tuple[str, ...] = ()) -> str:
    """The one key prefix under which `suffix` is stored (e.g. 'language_model.model.' for embed_tokens)."""
    hits = [k[: -len(suffix)] for k in keys if k.endswith(suffix) and not any(e in k for e in exclude)]
    if len(hits) != 1:
        raise CheckpointError(f"cannot locate the {what} weights: {len(hits)} tensors end with {suffix!r}", folder)
    return hits[0]


def _auto_config(path: str | Path, allowed: tuple[str, ...], expected: str):
    """(folder, model_type, transformers config) of a local folder whose model_type is one of `allowed`."""
    from transformers import AutoConfig

    folder = Path(path)
    model_type = read_model_config(folder).get("model_type")
    if model_type not in allowed:
        raise CheckpointError(f"model_type {model_type!r} is not {expected}", folder)
    with quiet_transformers():
        return folder, model_type, AutoConfig.from_pretrained(folder, local_files_only=True)


def vision_config(path: str | Path):
    """The SigLIP vision config of a SiglipModel, SigLIP-vision or Gemma-3 multimodal folder (no pooling head)."""
    from transformers import SiglipVisionConfig

    folder, _, cfg = _auto_config(path, SIGLIP_TYPES, "a SigLIP or Gemma-3 multimodal model")
    vc = cfg if isinstance(cfg, SiglipVisionConfig) else cfg.vision_config
    if not isinstance(vc, SiglipVisionConfig):
        raise CheckpointError(f"its vision tower is {type(vc).__name__}, not SigLIP", folder)
    vc.vision_use_head = False  # brain3d uses the patch tokens, never the pooled head
    return vc


def text_config(path: str | Path):
    """The Gemma-3 text config of a Gemma-3 multimodal or causal-LM folder."""
    _, model_type, cfg = _auto_config(path, GEMMA3_TYPES, "a Gemma-3 model (gemma3 or gemma3_text)")
    return cfg.text_config if model_type == "gemma3" else cfg


def _check_loading(info: dict, folder: Path, what: str, allowed_missing: tuple[str, ...] = ()) -> None:
    missing = [k for k in info.get("missing_keys", []) if k not in allowed_missing]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or mismatched or info.get("error_msgs"):
        shown = ", ".join(str(k) for k in (missing + mismatched)[:5])
        raise CheckpointError(
            f"{what} would be left partly uninitialised: {len(missing)} missing and {len(mismatched)} mismatched "
            f"weights (e.g. {shown})",
            folder,
        )


def load_vision_tower(path: str | Path, dtype: torch.dtype | None = None, device: torch.device | str | None = None):
    """A frozen `SiglipVisionModel` (SDPA attention, no pooling head) with every weight from the folder."""
    from transformers import SiglipVisionModel

    folder = Path(path)
    config = vision_config(folder)
    prefix = _prefix_of(checkpoint_keys(folder), PATCH_KEY, folder, "vision tower", exclude=("audio",))
    key_mapping = {f"^{re.escape(prefix)}": ""} if prefix else None
    with quiet_transformers():
        model, info = SiglipVisionModel.from_pretrained(
            folder, config=config, key_mapping=key_mapping, output_loading_info=True, local_files_only=True,
            dtype=dtype or default_dtype(device), attn_implementation="sdpa", **_device_map(device),
        )
    _check_loading(info, folder, "the vision tower")
    return model.eval().requires_grad_(False)


def load_language_model(
    path: str | Path, dtype: torch.dtype | None = None, device: torch.device | str | None = None, load_4bit: bool = False
):
    """A frozen text-only `Gemma3ForCausalLM` with every weight from the folder (4-bit NF4 when asked)."""
    from transformers import Gemma3ForCausalLM

    folder = Path(path)
    config = text_config(folder)
    keys = checkpoint_keys(folder)
    prefix = _prefix_of(keys, EMBED_KEY, folder, "language model", exclude=("vision", "audio"))
    key_mapping = {f"^{re.escape(prefix)}": "model.", r"^language_model\.lm_head\.": "lm_head."}
    kwargs: dict = dict(dtype=dtype or default_dtype(device))
    if load_4bit:
        from transformers import BitsAndBytesConfig

        quiet.four_bit_requested(device)
        kwargs["dtype"] = torch.bfloat16
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    with quiet_transformers():
        model, info = Gemma3ForCausalLM.from_pretrained(
            folder, config=config, key_mapping=key_mapping, output_loading_info=True, local_files_only=True,
            attn_implementation="sdpa", **kwargs, **_device_map(device),
        )
    tied = ("lm_head.weight",) if getattr(config, "tie_word_embeddings", True) else ()
    _check_loading(info, folder, "the language model", allowed_missing=tied)
    return prepare_language_model(model).eval().requires_grad_(False)


def prepare_language_model(model: torch.nn.Module) -> torch.nn.Module:
    """What brain3d adds to a loaded causal LM: its head reads a contiguous input (see `_contiguous_input`)."""
    model.get_output_embeddings().register_forward_pre_hook(_contiguous_input)
    return model


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    """The LM head reads the last position as a strided view of the hidden states (B, 1, d); torch 2.13's CPU
    bf16 matmul takes a slow path on such views that also copies the whole weight: 32-42 s instead of 0.12 s
    and 1.3 GB for Gemma-3's 262,208 x 2560 head on 2 cores (measured). `.contiguous()` is not enough: at
    B = 1 the view already counts as contiguous (size-1 dimensions) but keeps its odd stride; reshaping
    through (B * T, d) gives it the canonical strides (a copy only when needed, negligible next to the head)."""
    x = args[0]
    return (x.reshape(-1, x.shape[-1]).view(x.shape), *args[1:])


def load_tokenizer(path: str | Path):
    """The LM folder's tokenizer (AutoTokenizer, local files only)."""
    from transformers import AutoTokenizer

    folder = Path(path)
    try:
        with quiet_transformers():
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load a tokenizer from it ({exc})", folder) from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _device_map(device: torch.device | str | None) -> dict:
    """Load straight onto a GPU (no CPU copy of a 4B model); on CPU use the default placement."""
    if device is None or torch.device(device).type == "cpu":
        return {}
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return {"device_map": {"": device}}
