"""Things computed once per phase from a frozen part of the model: the report-embedding bank (phase 1, LM
frozen) and the encoder-feature cache (phases 2A/2B, encoder frozen)."""

from __future__ import annotations

import contextlib
from typing import Callable, Sequence

import torch

from brain3d.data.cache import FeatureCache, feature_key, module_digest, volume_digest
from brain3d.data.dataset import VolumeSource, swap_sides
from brain3d.data.manifest import Record


class TextBank:
    """Distinct report texts and their frozen-LM embeddings: `ids(reports)` -> rows, `emb` (M, dlm)."""

    def __init__(self, texts: Sequence[str], emb: torch.Tensor):
        self.texts = list(texts)
        self.index = {t: i for i, t in enumerate(self.texts)}
        self.emb = emb

    def ids(self, reports: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self.index[r] for r in reports], dtype=torch.long, device=self.emb.device)

    @classmethod
    @torch.no_grad()
    def build(cls, model, records: Sequence[Record], with_mirrors: bool, batch_size: int,
              autocast: Callable = contextlib.nullcontext) -> "TextBank":
        """Embed every distinct report of `records` (and its left/right-swapped twin when augmenting)."""
        texts: list[str] = []
        for r in records:
            texts.append(r.report)
            if with_mirrors:
                texts.append(swap_sides(r.report))
        texts = list(dict.fromkeys(texts))  # distinct, first-seen order (deterministic)
        was_training = model.training
        model.eval()
        try:
            with autocast():
                parts = [model.text_embedding(texts[i:i + batch_size]).float() for i in range(0, len(texts), batch_size)]
        finally:
            model.train(was_training)
        return cls(texts, torch.cat(parts))  # (M, dlm)


def encoder_digest(model, precision: str) -> str:
    """Digest of the encoder weights (+ precision): part of every feature-cache key."""
    return f"{module_digest(model.encoder)}-{precision}"


def feature_keys(records: Sequence[Record], variants: dict[str, tuple[bool, ...]], encoder: str, volumes: VolumeSource,
                 precision: str) -> dict[tuple[str, bool], str]:
    """Cache key of every (subject, mirrored) input needed; `variants[id]` lists the mirror states wanted."""
    keys = {}
    for r in records:
        vol = volume_digest(r.image_paths(volumes.sequences))
        for m in variants[r.id]:
            keys[(r.id, m)] = feature_key(vol, encoder, volumes.preprocess, volumes.sequences or [], m, precision)
    return keys


@torch.no_grad()
def fill_cache(model, cache: FeatureCache, records: Sequence[Record], keys: dict[tuple[str, bool], str],
               volumes: VolumeSource, batch_size: int, rank: int = 0, world_size: int = 1,
               autocast: Callable = contextlib.nullcontext, progress: Callable | None = None) -> int:
    """Encode every missing entry of `keys` (this process's share of them) and store it; returns how many
    this process computed. Entries are independent files, so processes need no coordination beyond a barrier."""
    by_id = {r.id: r for r in records}
    todo = sorted(k for k, key in keys.items() if key not in cache)[rank::world_size]
    was_training = model.training
    model.eval()
    bar = progress(total=len(todo), desc="caching encoder features") if progress else None
    try:
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            x = torch.stack([volumes(by_id[sid], m) for sid, m in chunk]).to(model.device)  # (b, C, D, H, W)
            with autocast():
                feats = model.encode_volume(x)  # (b, N, dv)
            for (sid, m), f in zip(chunk, feats):
                cache.put(keys[(sid, m)], f.clone(), {"subject": sid, "mirrored": str(m)})
            if bar is not None:
                bar.update(len(chunk))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return len(todo)

