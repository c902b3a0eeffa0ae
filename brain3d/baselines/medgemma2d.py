"""The paper's 2D-slice MedGemma baseline: a Gemma-3 multimodal model reads N axial FLAIR slices as images.

Protocol (the reference code's, run here on brain3d's own manifest so both systems see the same subjects):
N equidistant axial slices of the FLAIR in model space (`baselines.slices`), each image followed by
"SLICE n", then Brain3D's instruction, in one user turn rendered by the model's own processor and chat
template; greedy decoding. Plain greedy, without Brain3D's repetition penalties: with input ids in the prompt
those penalties would also push down the instruction's own words.

OUT_DIR layout (resumable like `brain3d evaluate`):
    baseline.json      the settings (a resumed run must match), slice indices and the prefill token counts
    predictions.jsonl  id, reference, generated, healthy, truth, sequences: one row per subject, appended per batch;
                       `brain3d score OUT_DIR/predictions.jsonl --out OUT_DIR` scores it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from brain3d.baselines.slices import grid_for, load_slices, slice_indices, to_images
from brain3d.data.manifest import Record, read_manifest
from brain3d.errors import Brain3DError, CheckpointError
from brain3d.eval.evaluate import check_run_info
from brain3d.fsutil import append_jsonl
from brain3d.model.config import DEFAULT_PROMPT

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "baseline.json"
SEQUENCE = "flair"
SYSTEM = "MedGemma 2D slices"
# settings that change the generated text: a resumed run must use the same ones
_GENERATION_KEYS = ("model", "manifest", "split", "slices", "slice_size", "nonzero", "max_new_tokens", "prompt")


@dataclass(frozen=True)
class SliceBaselineOptions:
    """Which subjects, how many slices of which size, and how to generate."""

    split: str | None = "test"
    slices: int = 64
    slice_size: int = 128
    nonzero: bool = False
    batch_size: int = 1
    max_new_tokens: int = 256
    limit: int | None = None
    device: str = "auto"
    progress: bool = True
    prompt: str = DEFAULT_PROMPT


def slice_messages(n: int, prompt: str) -> list[dict]:
    """One user turn: image, "SLICE 1", image, "SLICE 2", ..., then the instruction (images are placeholders;
    the processor takes the pixels)."""
    content: list[dict] = []
    for i in range(1, n + 1):
        content += [{"type": "image"}, {"type": "text", "text": f"SLICE {i}"}]
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


def load_processor(folder: str | Path):
    """The folder's own processor (MedGemma: Gemma3Processor), padding on the left for batched generation."""
    from transformers import AutoProcessor

    from brain3d.model.backbones import quiet_transformers

    try:
        with quiet_transformers():
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"has no usable image processor for the 2D baseline ({exc})", folder) from exc
    if not hasattr(processor, "image_processor") or not getattr(processor, "chat_template", None):
        raise CheckpointError("its processor lacks an image processor or a chat template (a MedGemma folder "
                              "has both)", folder)
    processor.tokenizer.padding_side = "left"
    return processor


def load_multimodal(folder: str | Path, device: str):
    """The whole Gemma-3 multimodal model (vision tower + LM) with every weight from the folder."""
    from transformers import Gemma3ForConditionalGeneration

    from brain3d.model.backbones import (_check_loading, _device_map, default_dtype, quiet_transformers,
                                         read_model_config)

    folder = Path(folder)
    if read_model_config(folder).get("model_type") != "gemma3":
        raise CheckpointError("is not a Gemma-3 multimodal model (model_type 'gemma3'); the 2D baseline needs "
                              "its vision tower", folder)
    with quiet_transformers():
        model, info = Gemma3ForConditionalGeneration.from_pretrained(
            folder, output_loading_info=True, local_files_only=True, dtype=default_dtype(device),
            **_device_map(device))
    tied = ("lm_head.weight",) if getattr(model.config.get_text_config(), "tie_word_embeddings", True) else ()
    _check_loading(info, folder, "the multimodal model", allowed_missing=tied)
    return model.eval().requires_grad_(False)


def encode(processor, slices: Sequence[np.ndarray], prompt: str):
    """Model inputs for a batch of subjects, each (N, H, W) uint8 slices: input_ids (B, T), pixel_values
    (B * N, 3, s, s), attention_mask and token_type_ids (B, T)."""
    n = len(slices[0])
    text = processor.apply_chat_template(slice_messages(n, prompt), tokenize=False, add_generation_prompt=True)
    # the rendered text already starts with <bos>; the tokenizer must not add a second one
    return processor(text=[text] * len(slices), images=[to_images(s) for s in slices], return_tensors="pt",
                     padding=True, add_special_tokens=False)


def prefill_tokens(processor, n: int, size: int, prompt: str) -> dict[str, int]:
    """Prompt length of one subject before the first generated token: {"total", "image"} (image = N x the
    processor's tokens per image)."""
    inputs = encode(processor, [np.zeros((n, size, size), np.uint8)], prompt)
    image_id = processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.image_token)
    return {"total": int(inputs["input_ids"].shape[1]), "image": int((inputs["input_ids"][0] == image_id).sum())}


@torch.no_grad()
def generate_reports(model, processor, slices: Sequence[np.ndarray], prompt: str, max_new_tokens: int) -> list[str]:
    """Greedy reports for a batch of subjects' slices (each (N, H, W) uint8); only the new text of each."""
    from transformers import GenerationConfig

    inputs = encode(processor, slices, prompt).to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                           eos_token_id=model.generation_config.eos_token_id,
                           pad_token_id=processor.tokenizer.pad_token_id, bos_token_id=processor.tokenizer.bos_token_id)
    out = model.generate(**inputs, generation_config=gen)  # (B, T + new)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in processor.tokenizer.batch_decode(new, skip_special_tokens=True)]


def run_slice_baseline(model_dir: str | Path, manifest: str | Path, out_dir: str | Path,
                       opts: SliceBaselineOptions = SliceBaselineOptions()) -> dict:
    """Generate (resumably) the baseline's reports for a manifest split; returns the run info (baseline.json)."""
    from brain3d.model.backbones import text_config

    if opts.batch_size < 1:
        raise Brain3DError(f"batch size must be at least 1, got {opts.batch_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = read_manifest(manifest, opts.split)[: opts.limit or None]
    processor = load_processor(model_dir)
    grid = grid_for(opts.slices, opts.slice_size, opts.nonzero)
    prefill = prefill_tokens(processor, opts.slices, opts.slice_size, opts.prompt)
    context = int(getattr(text_config(model_dir), "max_position_embeddings", 0) or 0)
    if context and prefill["total"] + opts.max_new_tokens > context:
        raise Brain3DError(f"{opts.slices} slices need {prefill['total']} prompt tokens, which with "
                           f"{opts.max_new_tokens} new tokens exceeds the model's context of {context}; "
                           "use fewer --slices", model_dir)
    info = {"model": str(Path(model_dir).resolve()), "manifest": str(Path(manifest).resolve()), "split": opts.split,
            "slices": opts.slices, "slice_size": opts.slice_size, "nonzero": opts.nonzero,
            "max_new_tokens": opts.max_new_tokens, "prompt": opts.prompt, "sequence": SEQUENCE,
            "grid": list(grid.size), "slice_indices": slice_indices(grid.size[0], opts.slices),
            "display": "radiological (anterior up, patient's right on the image's left)", "decoding": "greedy",
            "prefill_tokens": prefill["total"], "image_tokens": prefill["image"],
            "image_tokens_per_slice": prefill["image"] // opts.slices, "n_subjects": len(records)}
    check_run_info(out, info, RUN_INFO, _GENERATION_KEYS)
    _generate(model_dir, processor, records, out, opts)
    return info


def _generate(model_dir: str | Path, processor, records: Sequence[Record], out: Path,
              opts: SliceBaselineOptions) -> None:
    """Append a row per subject not yet in predictions.jsonl; the model loads only when there is work."""
    from rich.progress import Progress

    from brain3d.ranks import World
    from brain3d.shards import ShardedJsonl

    path = out / PREDICTIONS
    done = ShardedJsonl(path, World()).start([r.id for r in records])  # an interrupted run's torn tail is cut
    todo = [r for r in records if r.id not in done]
    if not todo:
        return
    model = load_multimodal(model_dir, World().device(opts.device))
    with Progress(disable=not opts.progress, transient=True) as bar:
        task = bar.add_task("2D-slice baseline", total=len(records), completed=len(records) - len(todo))
        for start in range(0, len(todo), opts.batch_size):
            batch = todo[start:start + opts.batch_size]
            slices = [load_slices(r.image_paths([SEQUENCE])[0], opts.slices, opts.slice_size, opts.nonzero)
                      for r in batch]  # each (N, S, S)
            texts = generate_reports(model, processor, slices, opts.prompt, opts.max_new_tokens)
            for rec, text in zip(batch, texts):
                append_jsonl(path, {"id": rec.id, "reference": rec.report, "generated": text, "healthy": rec.healthy,
                                    "truth": rec.truth.model_dump() if rec.truth is not None else None,
                                    "sequences": [SEQUENCE]})
            bar.advance(task, len(batch))


