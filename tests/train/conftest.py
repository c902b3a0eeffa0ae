"""Fixtures for training tests: a tiny manifest of small NIfTI volumes and a fast run config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brain3d.data.manifest import Record, Truth, write_manifest
from brain3d.io import write_nifti
from brain3d.synth.reports import write_report

SHAPE = (16, 32, 32)  # (D, H, W)
# model index (d, h, w) -> world (x, y, z) = (w, h, d) mm: W runs to the patient's right, H anterior, D superior
MODEL_AFFINE = np.eye(4)[[2, 1, 0, 3]]


def blob_volume(side: str | None, seed: int) -> np.ndarray:
    """Noise + a bright ball in the patient's left (low W) or right half; healthy = no ball."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.3, 0.05, SHAPE).astype(np.float32)
    if side is not None:
        d, h, w = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
        cw = 8 if side == "left" else 24
        ch = 10 + seed % 12
        x[(d - 8) ** 2 + (h - ch) ** 2 + (w - cw) ** 2 < 16] = 1.0
    return x


def make_manifest(folder: Path, n_train: int = 8, n_val: int = 4, n_test: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        sid = f"sub-{i:03d}"
        healthy = i % 4 == 3
        side = None if healthy else ("left" if i % 2 == 0 else "right")
        truth = None if healthy else Truth(side=side, lobes=["frontal"], findings={"edema": True, "necrosis": i % 3 == 0})
        path = write_nifti(blob_volume(side, i), MODEL_AFFINE, folder / f"{sid}_flair.nii.gz")  # stored RAS
        records.append(Record(id=sid, split=split, images={"flair": str(path)}, healthy=healthy, truth=truth,
                              report=write_report(truth, healthy, sid, seed=0)))
    return write_manifest(records, folder / "manifest.jsonl")


@pytest.fixture(scope="session")
def train_manifest(tmp_path_factory) -> Path:
    return make_manifest(tmp_path_factory.mktemp("train_cohort"))


def fast_config(**changes):
    """A run config for 16x32x32 volumes, 8 tokens, one short epoch per phase, no bars."""
    from brain3d.train.config import validate_config

    data = {
        "seed": 3,
        "threads": 1,
        "model": {"image_size": [16, 32, 32], "num_tokens": 8, "max_report_tokens": 48},
        "eval_batch_size": 4,
        "diagnostics": {"max_new_tokens": 8},
        "phases": {
            "1": {"epochs": 1, "batch_size": 4},
            "2a": {"epochs": 1, "batch_size": 4, "grad_accum": 1, "lr": 1e-3},
            "2b": {"epochs": 1, "batch_size": 4, "grad_accum": 1, "lr": 1e-3, "group_lr": {"lora": 1e-3}},
        },
    }
    for key, value in changes.items():
        node = data
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return validate_config(data)
