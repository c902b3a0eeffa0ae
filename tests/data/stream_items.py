"""Loaders for tests of `brain3d.data.stream`: module-level, so that reader processes can be handed them."""

from __future__ import annotations

import os

import torch

from brain3d.errors import VolumeError


def volume(i: int) -> torch.Tensor:
    """Item i's 'volume'; item 3 is a bad file."""
    if i == 3:
        raise VolumeError("is truncated or corrupt", f"scan{i}.nii.gz")
    return torch.full((1, 2, 2, 2), float(i))


def reader_pid(i: int) -> int:
    return os.getpid()


def volume_or_none(i: int) -> None:
    return None
