"""Real-width stand-ins: MedSigLIP-448 and MedGemma-1.5-4B-IT as downloaded, in everything but depth and values.

`make_paper_models(out, layers=N)` writes
  vision/    a `SiglipModel` folder: MedSigLIP-448's published vision and text configs (1152 wide, patch 14,
             image 448) cut to N layers, one float32 `model.safetensors` with the published key names,
             the SigLIP image processor;
  language/  a `Gemma3ForConditionalGeneration` folder: MedGemma-1.5-4B-IT's published text config (2560 wide,
             head_dim 256, 4 KV heads, sliding window 1024, vocabulary 262,208, linear RoPE scaling), its own
             SigLIP-896 tower and projector, N layers each, bfloat16 weights in two safetensors shards with
             `model.safetensors.index.json` under the real checkpoint's names (`language_model.model.*`,
             `vision_tower.vision_model.*`, `multi_modal_projector.*`; tied `lm_head` not stored), a
             tokenizer of exactly 262,208 ids with Gemma's special-token ids (pad 0, eos 1, bos 2, <end_of_turn>
             106, image 262,144, ...), the chat template, processor and generation configs.
The config.json files are the published ones (transformers 4.x spelling) with only the depth changed, so the
loaders meet what a user's download holds. Weights are random (normal, std = initializer_range; norms at
identity); the text tokens are the tiny twin's report vocabulary placed after Gemma's control tokens, the
other ids are unreachable `<unusedN>` entries, so every id the tokenizer emits is inside the embedding table.
`layers=None` writes the published depth (27 + 34 layers, ~9 GB: for a GPU check, not for CI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from brain3d.errors import ConfigError
from brain3d.fsutil import atomic_dir, atomic_write_json, stable_int
from brain3d.model.backbones import quiet_transformers
from brain3d.model.published import LANGUAGE, VISION, at_depth, published_config
from brain3d.twin.tiny import CHAT_TEMPLATE, IMAGE_TOKENS, SPECIAL_TOKENS, _write_generation_config, gemma_processor, train_tokenizer

# Gemma 3's ids of its control tokens (FACTS.md: eos [1, 106], image 262,144, boi 255,999, eoi 256,000).
GEMMA_SPECIAL_IDS = {
    "<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<start_of_turn>": 105, "<end_of_turn>": 106,
    "<start_of_image>": 255999, "<end_of_image>": 256000, "<image_soft_token>": 262144,
}
FIRST_TEXT_ID = 107  # the twin's text tokens follow Gemma's control block
# transformers 5 module names -> the names stored in the published MedGemma checkpoint
GEMMA_KEY_NAMES = (
    ("model.language_model.", "language_model.model."),
    ("model.vision_tower.", "vision_tower.vision_model."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
)
SHARDS = 2


def make_paper_models(out_dir: str | Path, layers: int | None = 2, seed: int = 0) -> dict[str, Path]:
    """Write OUT_DIR/vision (MedSigLIP-448 stand-in) and OUT_DIR/language (MedGemma-1.5-4B-IT stand-in) with
    `layers` layers per tower (None: the published depth). Deterministic for a seed. Returns their paths."""
    out = Path(out_dir)
    paths = {"vision": out / "vision", "language": out / "language"}
    vision_cfg = at_depth(published_config(VISION), layers)
    language_cfg = at_depth(published_config(LANGUAGE), layers)
    with quiet_transformers():
        tokenizer = gemma_vocabulary(train_tokenizer(seed), int(language_cfg["text_config"]["vocab_size"]))
        with atomic_dir(paths["vision"]) as tmp:
            _write_siglip(tmp, vision_cfg, seed)
        with atomic_dir(paths["language"]) as tmp:
            _write_gemma(tmp, language_cfg, tokenizer, seed + 1)
    return paths


def _write_siglip(folder: Path, config: dict, seed: int) -> None:
    from safetensors.torch import save_file
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    model = _on_meta(SiglipModel, SiglipConfig.from_dict(config))
    dtype = getattr(torch, config.get("torch_dtype", "float32"))
    std = float(config.get("initializer_factor", 1.0)) * 0.02
    state = dict(random_state(model, seed, dtype, std))
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(folder / "config.json", config)
    side = int(config["vision_config"]["image_size"])
    SiglipImageProcessor(size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)


def _write_gemma(folder: Path, config: dict, tokenizer, seed: int) -> None:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    model = _on_meta(Gemma3ForConditionalGeneration, Gemma3Config.from_dict(config))
    dtype = getattr(torch, config.get("torch_dtype", "bfloat16"))
    std = float(config.get("initializer_range", 0.02))
    names = {name: stored_name(name) for name, _ in model.named_parameters()}
    write_sharded(folder, names, lambda **kw: random_state(model, seed, dtype, std, **kw), SHARDS)
    atomic_write_json(folder / "config.json", config)
    generation = published_config(LANGUAGE, "generation_config")
    _write_generation_config(folder, tokenizer, **{k: v for k, v in generation.items()
                                                   if k not in ("bos_token_id", "eos_token_id", "pad_token_id")})
    vision = config["vision_config"]
    gemma_processor(tokenizer, int(vision["image_size"]), int(config["mm_tokens_per_image"])).save_pretrained(folder)


def stored_name(name: str) -> str:
    """A transformers-5 parameter name of Gemma3ForConditionalGeneration -> its name in the published checkpoint."""
    for new, old in GEMMA_KEY_NAMES:
        if name.startswith(new):
            return old + name[len(new):]
    raise ConfigError(f"parameter {name} has no name in the published MedGemma checkpoint layout")


def write_sharded(folder: Path, names: dict[str, str], tensors: Callable[..., Iterator[tuple[str, torch.Tensor]]],
                  shards: int) -> None:
    """Write the tensors of `tensors()` ((name, tensor) pairs, made lazily; `tensors(values=False)` gives meta
    tensors for sizing, `tensors(only=names)` makes only those) into `shards` safetensors files under their stored `names`, filled greedily in
    stored-name order as transformers shards, plus model.safetensors.index.json. One shard in memory at a time."""
    from safetensors.torch import save_file

    nbytes = {n: t.numel() * t.element_size() for n, t in tensors(values=False)}
    total = sum(nbytes.values())
    shard_of: dict[str, int] = {}  # parameter name -> shard
    shard, filled = 0, 0
    for name in sorted(names, key=names.get):
        if filled and filled + nbytes[name] > total / shards and shard < shards - 1:
            shard, filled = shard + 1, 0
        shard_of[name] = shard
        filled += nbytes[name]
    files = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    for i, file in enumerate(files):
        part = {names[n]: t for n, t in tensors(only={n for n, j in shard_of.items() if j == i})}
        save_file(part, str(folder / file), metadata={"format": "pt"})
        del part
    atomic_write_json(folder / "model.safetensors.index.json", {
        "metadata": {"total_size": total},
        "weight_map": {names[n]: files[i] for n, i in sorted(shard_of.items(), key=lambda kv: names[kv[0]])},
    })


def random_state(model: nn.Module, seed: int, dtype: torch.dtype, std: float, values: bool = True,
                 only: set[str] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(parameter name, random tensor) for every parameter of a meta-device model: LayerNorms at weight 1 /
    bias 0, Gemma's RMSNorms at 0 (it scales by 1 + weight), other biases 0, SigLIP's logit scale / bias at
    their initial values, everything else normal(0, std) from a generator seeded by (seed, name).
    `values=False` yields empty meta tensors of the right shape and dtype (for sizing); `only` limits the names."""
    seen: set[int] = set()  # tied parameters (Gemma's lm_head) are stored once, under their first name
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if id(p) in seen:
                continue
            seen.add(id(p))
            if only is not None and name not in only:
                continue
            if not values:
                yield name, torch.empty(p.shape, dtype=dtype, device="meta")
                continue
            yield name, _init_value(module, p_name, p.shape, dtype, std, stable_int(seed, name))


def _init_value(module: nn.Module, p_name: str, shape: torch.Size, dtype: torch.dtype, std: float, seed: int) -> torch.Tensor:
    kind = type(module).__name__
    if isinstance(module, nn.LayerNorm):
        return (torch.ones if p_name == "weight" else torch.zeros)(shape, dtype=dtype)
    if kind.endswith("RMSNorm") or p_name.endswith("bias") and p_name != "logit_bias":
        return torch.zeros(shape, dtype=dtype)
    if p_name == "logit_scale":
        return torch.full(shape, float(torch.log(torch.tensor(10.0))), dtype=dtype)
    if p_name == "logit_bias":
        return torch.full(shape, -10.0, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype).mul_(std)


def _on_meta(cls, config) -> nn.Module:
    """The model class built on the meta device (names and shapes only; nothing allocated)."""
    with torch.device("meta"):
        return cls(config)


def gemma_vocabulary(fast, vocab_size: int, special_ids: dict[str, int] = GEMMA_SPECIAL_IDS,
                     first_text_id: int = FIRST_TEXT_ID):
    """The twin's tokenizer laid out on Gemma's id space: control tokens at Gemma's ids, the twin's text tokens
    from `first_text_id` on, every other id an unreachable `<unusedN>` entry; len() == vocab_size."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(fast.backend_tokenizer.to_str())
    old_vocab: dict[str, int] = spec["model"]["vocab"]
    missing = [t for t in SPECIAL_TOKENS if t not in special_ids]
    if missing:
        raise ConfigError(f"no Gemma id for the special token(s) {', '.join(missing)}")
    text_tokens = [t for t, _ in sorted(old_vocab.items(), key=lambda kv: kv[1]) if t not in special_ids]
    taken = set(special_ids.values())
    free = (i for i in range(first_text_id, vocab_size) if i not in taken)
    vocab = dict(special_ids)
    for token in text_tokens:
        vocab[token] = next(free)
    if max(vocab.values()) >= vocab_size:
        raise ConfigError(f"the vocabulary of {vocab_size} ids cannot hold the tokenizer's {len(vocab)} tokens")
    used = set(vocab.values())
    unused = 0
    for i in range(vocab_size):
        if i not in used:
            vocab[f"<unused{unused}>"] = i
            unused += 1
    spec["model"]["vocab"] = vocab
    for entry in spec["added_tokens"]:
        entry["id"] = vocab[entry["content"]]
    for entry in spec["post_processor"]["special_tokens"].values():
        entry["ids"] = [vocab[t] for t in entry["tokens"]]
    out = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)), bos_token="<bos>", eos_token="<eos>",
        pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
        additional_special_tokens=list(SPECIAL_TOKENS[5:]), **IMAGE_TOKENS,
    )
    out.chat_template = CHAT_TEMPLATE
    return out
