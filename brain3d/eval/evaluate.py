"""Evaluate a checkpoint on a manifest split: generate reports in batches, then score them.

OUT_DIR layout:
    evaluate.json      what was generated (checkpoint, manifest, split, decoding, mirror); a resumed run must match
    predictions.jsonl  one row per subject, appended as each batch finishes (an interrupted run resumes here):
                       id, reference, generated, healthy, truth, sequences [, generated_mirror]
    metrics.json, metrics.md, per_sample.csv   from `brain3d.eval.scoring.score_predictions`

Volumes are read and preprocessed exactly as in training (`VolumeSource`, the checkpoint's sequences, grid and
the intensity settings of its training config), so evaluation sees what training saw.
"""

from __future__ import annotations

import gc
import json
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch

from brain3d.data.dataset import VolumeSource
from brain3d.data.manifest import Record, read_manifest
from brain3d.data.stream import batched, prefetched
from brain3d.errors import Brain3DError, CheckpointError
from brain3d.eval.scoring import ScoreOptions, score_predictions
from brain3d.fsutil import atomic_write_json, ensure_dir, stable_int
from brain3d.orientation import flip_left_right
from brain3d.preprocess import PreprocessConfig
from brain3d.ranks import World, world
from brain3d.shards import ShardedJsonl

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "evaluate.json"
PROFILES = ("greedy", "paper")
# settings that change the generated text: a resumed run must use the same ones
_GENERATION_KEYS = ("checkpoint", "manifest", "split", "profile", "max_new_tokens", "mirror", "seed")


@dataclass
class EvaluateOptions:
    """How to generate (split, decoding, batching, mirror test) and how to score."""

    split: str | None = "test"
    profile: str = "greedy"
    batch_size: int = 4
    max_new_tokens: int = 256
    mirror: bool = False
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    vision_model: str | None = None
    language_model: str | None = None
    load_4bit: bool | None = None
    precision: str = "auto"  # weights of the frozen towers: auto (bf16 on GPU, fp32 on CPU), bf16 or fp32
    progress: bool = True
    workers: int = 0  # reader processes that prefetch volumes while the model generates (0: read between batches)
    score: ScoreOptions = field(default_factory=ScoreOptions)


PRECISIONS = ("auto", "bf16", "fp32")


def resolve_dtype(precision: str) -> torch.dtype | None:
    """bf16 / fp32 as asked; None (auto) lets the loader choose: bf16 on GPU, float32 on CPU."""
    if precision not in PRECISIONS:
        raise Brain3DError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return {"bf16": torch.bfloat16, "fp32": torch.float32}.get(precision)


def preprocess_for(model) -> PreprocessConfig:
    """The model's grid plus the intensity scaling of the training config stored in its checkpoint."""
    data = (getattr(model, "checkpoint_extra", None) or {}).get("train_config", {}).get("data", {})
    defaults = PreprocessConfig()
    return PreprocessConfig(size=tuple(model.config.image_size), low=float(data.get("low", defaults.low)),
                            high=float(data.get("high", defaults.high)),
                            nonzero=bool(data.get("nonzero", defaults.nonzero)),
                            scaling=str(data.get("scaling", defaults.scaling)))


def load_model(checkpoint: str | Path, opts: EvaluateOptions):
    from brain3d.model.brain3d import Brain3D

    if not (Path(checkpoint) / "config.json").is_file():
        raise CheckpointError("is not a brain3d checkpoint (no config.json)", checkpoint)
    model = Brain3D.from_pretrained(checkpoint, vision_model=opts.vision_model, language_model=opts.language_model,
                                    device=world().device(opts.device), load_4bit=opts.load_4bit,
                                    dtype=resolve_dtype(opts.precision))
    model.eval()
    return model


def select_records(manifest: str | Path, opts: EvaluateOptions) -> list[Record]:
    records = read_manifest(manifest, opts.split)
    return records[: opts.limit] if opts.limit else records


def check_run_info(out_dir: Path, info: dict, run_info: str = RUN_INFO,
                   keys: tuple[str, ...] = _GENERATION_KEYS, write: bool = True) -> None:
    """A resumed prediction run must keep the settings its predictions were made with (`keys` of the
    `run_info` file next to predictions.jsonl, or next to a rank's part of it); the file is (re)written with
    `info` unless `write` is False (the other ranks of a run only check)."""
    path = out_dir / run_info
    predictions = ShardedJsonl(out_dir / PREDICTIONS, World())
    if (predictions.final.is_file() or predictions.parts()) and path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        changed = [k for k in keys if old.get(k) != info.get(k)]
        if changed:
            raise Brain3DError(f"holds predictions made with other settings ({', '.join(changed)}); "
                               "use another --out or delete its predictions.jsonl", out_dir)
    if write:
        atomic_write_json(path, info)


def generate_pair(model, volumes: torch.Tensor, profile: str, max_new_tokens: int, seed: int | None,
                  mirror: bool) -> tuple[list[str], list[str | None]]:
    """Reports for a batch (B, C, D, H, W) and, with `mirror`, for the same scans mirrored left-right
    (same seed, so the two differ only by the image); shared by `evaluate` and `brain3d report`."""
    texts = model.generate(volumes=volumes, profile=profile, max_new_tokens=max_new_tokens, seed=seed)
    if not mirror:
        return texts, [None] * len(texts)
    return texts, model.generate(volumes=flip_left_right(volumes), profile=profile,
                                 max_new_tokens=max_new_tokens, seed=seed)


def generate_predictions(model, records: Sequence[Record], out_dir: Path, opts: EvaluateOptions,
                         volumes: VolumeSource | None = None, label: str = "generating") -> list[dict] | None:
    """Prediction rows for `records` in their order, generating only those not yet in predictions.jsonl.

    Volumes are read by `opts.workers` reader processes while the model generates (a shared memoising `volumes`,
    as ablation passes, is read in this process). Under torchrun each rank generates its share into its own part
    and the main rank merges them and gets the rows; the other ranks get None."""
    from rich.progress import Progress

    here = world()
    store = ShardedJsonl(out_dir / PREDICTIONS, here)
    order = [r.id for r in records]
    here.agree(order)
    done = store.start(order)
    mine = list(here.shard(r for r in records if r.id not in done))
    source = volumes or VolumeSource(preprocess_for(model), model.config.sequences, in_memory=False)
    workers = 0 if volumes is not None else opts.workers
    device = model.device
    sequences = list(model.config.sequences)  # what the model read: scoring counts statements it cannot support
    with Progress(disable=not opts.progress or not here.main, transient=True) as bar:
        task = bar.add_task(label, total=len(mine))
        with closing(prefetched(mine, source.load, workers, ahead=2 * opts.batch_size)) as stream:  # its readers end with this loop
            for batch in batched(stream, opts.batch_size):
                failed = next((x for x in batch if x.error is not None), None)
                if failed is not None:  # the evaluation set must be whole: a scan that cannot be read stops it
                    raise Brain3DError(failed.error)
                x = torch.stack([b.value for b in batch]).to(device)  # (B, C, D, H, W)
                seed = stable_int(opts.seed, *(b.item.id for b in batch))
                texts, mirrored = generate_pair(model, x, opts.profile, opts.max_new_tokens, seed, opts.mirror)
                rows = []
                for b, text, mtext in zip(batch, texts, mirrored):
                    rec = b.item
                    row = {"id": rec.id, "reference": rec.report, "generated": text, "healthy": rec.healthy,
                           "truth": rec.truth.model_dump() if rec.truth is not None else None, "sequences": sequences}
                    if mtext is not None:
                        row["generated_mirror"] = mtext
                    rows.append(row)
                store.append(rows)
                bar.advance(task, len(batch))
    merged = store.finish(order)
    if merged is None:
        return None
    for row in merged.values():  # rows of an older run (same checkpoint, evaluate.json checked) did not record them
        row.setdefault("sequences", sequences)
    return [merged[i] for i in order]


def evaluate_checkpoint(checkpoint: str | Path, manifest: str | Path, out_dir: str | Path,
                        opts: EvaluateOptions | None = None, model=None, volumes: VolumeSource | None = None,
                        records: Sequence[Record] | None = None, system: str | None = None) -> dict:
    """Generate (resumably) and score one checkpoint; returns the metrics dict written to metrics.json.

    `model` (already loaded) and `volumes` (a shared, memoising VolumeSource) let `ablate` reuse work;
    `system` names the table row (default: the checkpoint folder's name)."""
    opts = opts or EvaluateOptions()
    if opts.profile not in PROFILES:
        raise Brain3DError(f"decoding profile {opts.profile!r} is not one of {', '.join(PROFILES)}")
    if opts.batch_size < 1:
        raise Brain3DError(f"batch size must be at least 1, got {opts.batch_size}")
    out = Path(out_dir)
    ensure_dir(out)
    records = list(records) if records is not None else select_records(manifest, opts)
    here = world()
    info = {"checkpoint": str(Path(checkpoint).resolve()), "manifest": str(Path(manifest).resolve()),
            "split": opts.split, "profile": opts.profile, "max_new_tokens": opts.max_new_tokens,
            "mirror": opts.mirror, "seed": opts.seed, "n_subjects": len(records)}
    check_run_info(out, info, write=False)
    here.barrier()  # every rank checked the old settings before the main rank writes the new ones
    if here.main:
        atomic_write_json(out / RUN_INFO, info)
    own_model = model is None
    model = model if model is not None else load_model(checkpoint, opts)
    try:
        rows = generate_predictions(model, records, out, opts, volumes, label=f"generating ({Path(checkpoint).name})")
    finally:
        if own_model:
            del model
            free_memory()
    if rows is None:  # another rank's: the main rank scores the merged predictions
        return None
    score = replace(opts.score, system=system or Path(checkpoint).name)
    return score_predictions(rows, out, score, source=out / PREDICTIONS)


def free_memory() -> None:
    """Return a dropped model's memory before the next one loads (ablation loads three in turn)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
