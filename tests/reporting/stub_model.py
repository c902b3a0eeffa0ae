"""A stand-in for a loaded checkpoint that writes fixed texts: its config is a real `Brain3DConfig`, so records
judge assessability by the checkpoint's own `sequences`, as `generate_records` does for a trained model."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from brain3d.model.config import Brain3DConfig
from brain3d.preprocess import ModelVolume
from brain3d.reporting.inputs import ScanInput
from brain3d.reporting.runner import ReportOptions, generate_records
from brain3d.reporting.schema import ReportRecord

FLAIR_ONLY = ["flair"]
FLAIR_T1CE = ["flair", "t1ce"]
# what a FLAIR-only checkpoint trained on TextBraTS-style reports writes (issue 23)
TEXTBRATS_STYLE = ("A left frontal mass with surrounding edema. Peripheral enhancement is present on post-contrast "
                   "T1. No necrosis is seen.")


class FixedTextModel:
    """`generate` answers `text` for every volume; `config.sequences` are the input channels."""

    def __init__(self, sequences: Sequence[str], text: str) -> None:
        self.config = Brain3DConfig(vision_model="vision", language_model="language", sequences=list(sequences))
        self.device, self.text = torch.device("cpu"), text

    def generate(self, volumes: torch.Tensor, **_) -> list[str]:
        assert volumes.shape[1] == self.config.in_channels  # (B, C, D, H, W): one channel per sequence
        return [self.text] * volumes.shape[0]


def record_for(sequences: Sequence[str], text: str, rec_id: str = "scan", path: str = "scan") -> ReportRecord:
    """The record `generate_records` writes for one scan reported by a checkpoint reading `sequences`."""
    model = FixedTextModel(sequences, text)

    def loader(scan: ScanInput, _pre) -> ModelVolume:
        return ModelVolume(torch.zeros(len(sequences), 2, 2, 2), np.eye(4), scan.paths[0], ("R", "A", "S"))

    [rec] = generate_records(model, [ScanInput(rec_id, [path], path)], ReportOptions(checkpoint="ckpt"), None,
                             loader=loader)
    return rec
