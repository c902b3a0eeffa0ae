"""The tiny twin: random-initialised, tiny checkpoints of the real base models' classes.

`make_tiny_models` writes a `SiglipModel` folder (as MedSigLIP) and a `Gemma3ForConditionalGeneration`
folder (as MedGemma: tiny text model + tiny SigLIP tower) with a tokenizer trained offline on the synthetic
cohort's report vocabulary. Tests, CI and the demo load them through exactly the code path of the real
models (`brain3d.model.backbones`). Deterministic for a seed; takes a few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.model.backbones import quiet_transformers
from brain3d.model.config import DEFAULT_PROMPT, Brain3DConfig

# Gemma's special tokens, in Gemma's id order for the first three (pad 0, eos 1, bos 2).
SPECIAL_TOKENS = (
    "<pad>", "<eos>", "<bos>", "<unk>", "<mask>",
    "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>",
)
# Gemma 3's chat template, verbatim: string content for Brain3D's prompt, content lists with images for the
# 2D-slice baseline (each {"type": "image"} item becomes <start_of_image>, which the processor expands).
CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)
# Gemma 3's multimodal tokens, named as in MedGemma's tokenizer_config.json (the processor reads them by name).
IMAGE_TOKENS = dict(boi_token="<start_of_image>", eoi_token="<end_of_image>", image_token="<image_soft_token>")

TINY_VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   patch_size=8, image_size=128)  # a real 16 x 16 position table
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32, sliding_window=128,
                 layer_types=["sliding_attention", "full_attention"],
                 max_position_embeddings=4096)  # room for the 2D baseline's 64 slices x (16 image tokens + delimiters)
TINY_GEMMA_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         patch_size=8, image_size=64, vision_use_head=False)
GEMMA_IMAGE_TOKENS = 16  # per image: the 8 x 8 patch grid average-pooled to 4 x 4 (MedGemma: 256)
TOKENIZER_CORPUS = 2000
TOKENIZER_VOCAB = 768


def make_tiny_models(out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write OUT_DIR/vision (SiglipModel) and OUT_DIR/language (Gemma3ForConditionalGeneration + tokenizer +
    Gemma3Processor files, as a MedGemma folder has them).

    Returns {"vision": path, "language": path}."""
    out = Path(out_dir)
    paths = {"vision": out / "vision", "language": out / "language"}
    with quiet_transformers():
        tokenizer = train_tokenizer(seed)
        with _seeded(seed), atomic_dir(paths["vision"]) as tmp:
            tiny_siglip().save_pretrained(tmp)
        with _seeded(seed + 1), atomic_dir(paths["language"]) as tmp:
            tiny_gemma3(tokenizer).save_pretrained(tmp)
            tiny_processor(tokenizer).save_pretrained(tmp)  # tokenizer, chat template, image processor
            _write_generation_config(tmp, tokenizer)
    return paths


def tiny_config(paths: dict[str, Path] | dict[str, str], **overrides: Any) -> Brain3DConfig:
    """A Brain3DConfig for the tiny twin on small test volumes (1 x 16 x 32 x 32 -> 8 x 4 x 4 tokens)."""
    settings: dict[str, Any] = dict(image_size=(16, 32, 32), num_tokens=8, max_report_tokens=96)
    settings.update(overrides)
    return Brain3DConfig(vision_model=str(paths["vision"]), language_model=str(paths["language"]), **settings)


def train_tokenizer(seed: int = 0):
    """A byte-level BPE tokenizer trained on synthetic reports + the prompt, with Gemma's special tokens (image
    tokens named as Gemma-3's processor expects) and chat template, wrapped as a transformers fast tokenizer
    (AutoTokenizer loads it from the LM folder)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from brain3d.synth.reports import report_corpus

    corpus = report_corpus(TOKENIZER_CORPUS, seed) + [DEFAULT_PROMPT, "user model"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    bos = SPECIAL_TOKENS.index("<bos>")
    # Like Gemma's tokenizer: bos prepended, no eos appended.
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", additional_special_tokens=list(SPECIAL_TOKENS[5:]), **IMAGE_TOKENS,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_siglip():
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(
        # SigLIP compares image and text embeddings directly: both towers share the hidden size (as MedSigLIP)
        text_config=dict(vocab_size=128, hidden_size=TINY_VISION["hidden_size"], intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0),
        vision_config=dict(TINY_VISION),
    )
    return SiglipModel(config).eval()


def tiny_gemma3(tokenizer):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer), pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"],
        **TINY_TEXT,
    )
    config = Gemma3Config(
        text_config=text, vision_config=SiglipVisionConfig(**TINY_GEMMA_VISION),
        mm_tokens_per_image=GEMMA_IMAGE_TOKENS,
        boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    return Gemma3ForConditionalGeneration(config).eval()


def tiny_processor(tokenizer):
    """MedGemma's `Gemma3Processor` at the tiny tower's scale (see `gemma_processor`)."""
    return gemma_processor(tokenizer, TINY_GEMMA_VISION["image_size"], GEMMA_IMAGE_TOKENS)


def gemma_processor(tokenizer, image_size: int, tokens_per_image: int):
    """MedGemma's `Gemma3Processor`: its image processor (resize to the tower's image size, rescale 1/255,
    normalise with mean = std = 0.5, no pan-and-scan) and `tokens_per_image` image tokens per image."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    images = Gemma3ImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                                  image_std=[0.5] * 3, do_pan_and_scan=False)
    return Gemma3Processor(image_processor=images, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
                           image_seq_length=tokens_per_image)


def _write_generation_config(folder: Path, tokenizer, **extra: Any) -> None:
    """Like MedGemma's: stop on <eos> or <end_of_turn> (plus `extra` settings of the published file)."""
    atomic_write_json(folder / "generation_config.json", {
        **extra,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")],
        "pad_token_id": tokenizer.pad_token_id,
    })


class _seeded:
    """Seed torch's global RNG inside the block and restore it afterwards."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)


def describe(paths: dict[str, Path]) -> dict[str, Any]:
    """Short summary of the written folders (for the CLI)."""
    def cfg(p: Path) -> dict:
        return json.loads((p / "config.json").read_text(encoding="utf-8"))

    v, lm = cfg(paths["vision"]), cfg(paths["language"])
    return {
        "vision": {"path": str(paths["vision"]), "class": v["architectures"][0],
                   "hidden": v["vision_config"]["hidden_size"], "patch": v["vision_config"]["patch_size"],
                   "layers": v["vision_config"]["num_hidden_layers"]},
        "language": {"path": str(paths["language"]), "class": lm["architectures"][0],
                     "hidden": lm["text_config"]["hidden_size"], "vocab": lm["text_config"]["vocab_size"],
                     "layers": lm["text_config"]["num_hidden_layers"]},
    }
