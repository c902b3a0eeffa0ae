"""Torch datasets over manifest records: a subject's model input + report, with laterality augmentation.

Laterality augmentation mirrors the volume along W (the patient's left-right axis) and swaps "left" and
"right" in the report *together*, so the pair still tells the truth. Whether a subject is mirrored in an
epoch is a pure function of (seed, epoch, subject id): a resumed or multi-process run mirrors exactly the
subjects an unbroken single-process run mirrors.

The input of an item comes from a *source*: `VolumeSource` reads and preprocesses the scan (phase 1, where
the encoder trains), a feature source reads cached encoder features (phases 2A/2B; see `brain3d.data.cache`).
Both take `(record, mirrored)`, so the augmentation logic lives here once. A volume source can also give each
subject's lesion mask on the model grid (`labels`), mirrored with its scan, for the region read-out's mask loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from brain3d.anatomy.rules import UNKNOWN_LABEL
from brain3d.data.manifest import Record, Truth
from brain3d.fsutil import stable_int
from brain3d.orientation import flip_left_right
from brain3d.preprocess import PreprocessConfig, load_for_model

# "left"/"right" as a word or the stem of leftward(s)/leftmost; "left-sided" splits at the hyphen.
_SIDE_WORD = re.compile(r"\b(left|right)(?=(?:wards?|most)?\b)", re.IGNORECASE)
_OTHER = {"left": "right", "right": "left"}


def swap_sides(text: str) -> str:
    """The report of the mirrored volume: every "left" becomes "right" and vice versa, keeping the case
    pattern (left/Left/LEFT); "bilateral" and every other word are untouched."""

    def repl(m: re.Match) -> str:
        word = m.group(1)
        other = _OTHER[word.lower()]
        if word.isupper():
            return other.upper()
        if word[0].isupper():
            return other.capitalize()
        return other

    return _SIDE_WORD.sub(repl, text)


def mirror_truth(truth: Truth | None) -> Truth | None:
    """Ground truth of the mirrored volume: left and right exchanged, bilateral and lobes unchanged."""
    if truth is None or truth.side not in _OTHER:
        return truth
    return truth.model_copy(update={"side": _OTHER[truth.side]})


@dataclass(frozen=True)
class FlipPolicy:
    """Mirror each subject with probability `p` per epoch, decided by a stable hash (no shared RNG)."""

    p: float = 0.5
    seed: int = 42

    def mirrored(self, subject_id: str, epoch: int) -> bool:
        if self.p <= 0:
            return False
        if self.p >= 1:
            return True
        return (stable_int(self.seed, "flip", epoch, subject_id) % 1_000_000) < self.p * 1_000_000


Source = Callable[[Record, bool], torch.Tensor]


class VolumeSource:
    """(record, mirrored) -> preprocessed scan (C, D, H, W), optionally kept in memory after the first read."""

    def __init__(self, preprocess: PreprocessConfig, sequences: Sequence[str] | None = None, in_memory: bool = True):
        self.preprocess = preprocess
        self.sequences = list(sequences) if sequences is not None else None
        self.in_memory = in_memory
        self._memo: dict[str, torch.Tensor] = {}
        self._labels: dict[str, torch.Tensor] = {}

    def load(self, record: Record) -> torch.Tensor:
        x = self._memo.get(record.id)
        if x is None:
            x = load_for_model(record.image_paths(self.sequences), self.preprocess, names=self.sequences).tensor
            if self.in_memory:
                self._memo[record.id] = x
        return x  # (C, D, H, W)

    def __call__(self, record: Record, mirrored: bool) -> torch.Tensor:
        x = self.load(record)
        return flip_left_right(x) if mirrored else x

    def labels(self, record: Record, mirrored: bool) -> torch.Tensor:
        """(D, H, W) uint8 BraTS labels of the record's mask on the model grid (nearest neighbour through world mm,
        so any stored orientation lands right); 0 everywhere for a healthy subject, UNKNOWN_LABEL everywhere for a
        lesion subject without a mask. Mirrored with the scan."""
        y = self._labels.get(record.id)
        if y is None:
            y = torch.from_numpy(mask_on_model_grid(record, self.preprocess, self.sequences))
            if self.in_memory:
                self._labels[record.id] = y
        return flip_left_right(y) if mirrored else y


def mask_on_model_grid(record: Record, preprocess: PreprocessConfig, sequences: Sequence[str] | None = None) -> np.ndarray:
    """The record's lesion mask as (D, H, W) uint8 labels on its scan's model grid (see `VolumeSource.labels`)."""
    from brain3d.io import read_volume, resample_array
    from brain3d.preprocess import resized_affine

    size = tuple(preprocess.size)
    if record.mask is None:
        return np.full(size, 0 if record.healthy else UNKNOWN_LABEL, dtype=np.uint8)
    scan = read_volume(record.image_paths(sequences)[0])
    model_affine = resized_affine(scan.affine, scan.shape[-3:], size)
    mask = read_volume(record.mask)
    data = mask.data if mask.data.ndim == 3 else mask.data[0]
    return np.rint(resample_array(data, mask.affine, model_affine, size, order=0)).astype(np.uint8)


class ReportDataset(Dataset):
    """Items {"id", "inputs", "report", "mirrored"} (+ "labels" with a `labels` source); `set_epoch` selects the
    epoch's mirroring."""

    def __init__(self, records: Sequence[Record], source: Source, flip: FlipPolicy | None = None,
                 labels: Source | None = None):
        self.records = list(records)
        self.source = source
        self.flip = flip
        self.labels = labels
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def mirrored(self, index: int) -> bool:
        return self.flip is not None and self.flip.mirrored(self.records[index].id, self.epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        m = self.mirrored(index)
        item = {
            "id": rec.id,
            "inputs": self.source(rec, m),
            "report": swap_sides(rec.report) if m else rec.report,
            "mirrored": m,
        }
        if self.labels is not None:
            item["labels"] = self.labels(rec, m)
        return item


def collate(items: Sequence[dict]) -> dict:
    """Stack inputs (and labels) to (B, ...) and keep ids, reports and mirror flags as lists."""
    batch = {
        "id": [it["id"] for it in items],
        "inputs": torch.stack([it["inputs"] for it in items]),
        "report": [it["report"] for it in items],
        "mirrored": [bool(it["mirrored"]) for it in items],
    }
    if items and "labels" in items[0]:
        batch["labels"] = torch.stack([it["labels"] for it in items])  # (B, D, H, W)
    return batch


def epoch_batches(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_last: bool = False,
    min_last: int = 1,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """This process's batches of dataset indices for one epoch.

    The order is a permutation seeded by (seed, epoch), the same in every process; it is padded by wrapping
    around so that it splits evenly, and process `rank` takes every `world_size`-th index. Every process
    therefore runs the same number of steps (as DDP requires), and the union of their batches is the
    single-process epoch. A last batch smaller than `min_last` joins the one before it (phase 1 needs two
    volumes per batch, and dropping them would waste subjects).
    """
    if n <= 0:
        return []
    order = np.arange(n)
    if shuffle:
        order = np.random.default_rng(stable_int(seed, "order", epoch)).permutation(n)
    per_rank = -(-n // world_size)
    if drop_last:
        per_rank = n // world_size
    order = np.resize(order, per_rank * world_size)  # wraps around to pad
    mine = order[rank::world_size].tolist()
    batches = [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if len(batches) > 1 and len(batches[-1]) < min_last:
        batches[-2].extend(batches.pop())
    return batches
