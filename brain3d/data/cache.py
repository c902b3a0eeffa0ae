"""On-disk cache of frozen-encoder features, so phases 2A/2B never run the vision tower twice on one input.

A cache entry is one safetensors file holding the encoder output (N, dv) of one model input. Its key is a
hash of everything the features depend on:

* the scan's content (sha256 of its files' bytes, in sequence order; a DICOM folder hashes every file),
* the preprocessing (target grid, percentiles, sequences),
* whether the input was mirrored left-right (laterality augmentation feeds the mirror image, whose
  features are a different entry — mirroring the *features* would not be the same thing),
* the encoder's weights (a digest of every tensor the encoder uses) and the compute precision.

So a cache can be shared by runs and is never stale: new encoder weights or another grid give new keys.
Entries are written atomically (temp file + rename), so concurrent writers of the same key are harmless.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from brain3d.errors import CheckpointError
from brain3d.fsutil import atomic_write_bytes, stable_hash
from brain3d.preprocess import PreprocessConfig

_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (every file of a folder, in sorted order), memoised by (path, size, mtime)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(str(p.relative_to(path)).encode())
            h.update(file_digest(p).encode())
        return h.hexdigest()
    st = os.stat(path)
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _FILE_DIGESTS.get(memo_key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = _FILE_DIGESTS[memo_key] = h.hexdigest()
    return digest


def volume_digest(paths: Sequence[str | Path]) -> str:
    """Content digest of one subject's input files, in sequence order."""
    return stable_hash(*(file_digest(p) for p in paths), digits=32)


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Digest of named tensors (name, dtype, shape and bytes), independent of dict order and device."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def module_digest(module: torch.nn.Module) -> str:
    """Digest of a module's parameters and buffers (the weights its output depends on)."""
    named = dict(module.named_parameters())
    named.update({f"buffer:{k}": v for k, v in module.named_buffers()})
    return tensors_digest(named)


def feature_key(
    volume: str,
    encoder: str,
    preprocess: PreprocessConfig,
    sequences: Iterable[str],
    mirrored: bool,
    precision: str = "float32",
) -> str:
    """The cache key of one encoder input (see the module docstring for what it covers)."""
    return stable_hash(
        "brain3d-features-v1", volume, encoder, sorted(preprocess.to_dict().items()), list(sequences),
        "mirrored" if mirrored else "original", precision, digits=40,
    )


class FeatureCache:
    """A folder of `<key[:2]>/<key>.safetensors` entries; `get` returns None for a missing key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> torch.Tensor | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return st_load(p.read_bytes())["features"]
        except Exception as exc:  # a truncated or foreign file: say which one
            raise CheckpointError(f"feature cache entry cannot be read ({type(exc).__name__}); delete it", p) from None

    def put(self, key: str, features: torch.Tensor, meta: Mapping[str, str] | None = None) -> Path:
        data = st_save({"features": features.detach().cpu().contiguous()}, metadata=dict(meta or {}))
        return atomic_write_bytes(self.path(key), data)


class FeatureSource:
    """(record, mirrored) -> cached features (N, dv), for `ReportDataset`; `keys[(id, mirrored)]` names the
    entry. Entries read once are kept in memory when `in_memory` (they are small next to the volumes)."""

    def __init__(self, cache: FeatureCache, keys: Mapping[tuple[str, bool], str], in_memory: bool = True):
        self.cache = cache
        self.keys = dict(keys)
        self.in_memory = in_memory
        self._memo: dict[str, torch.Tensor] = {}

    def __call__(self, record, mirrored: bool) -> torch.Tensor:
        key = self.keys.get((record.id, bool(mirrored)))
        if key is None:
            raise CheckpointError(f"no cached features for subject {record.id} (mirrored={mirrored})", self.cache.root)
        x = self._memo.get(key)
        if x is None:
            x = self.cache.get(key)
            if x is None:
                raise CheckpointError(f"cached features of subject {record.id} are missing", self.cache.path(key))
            if self.in_memory:
                self._memo[key] = x
        return x
