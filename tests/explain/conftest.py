"""Explanation tests share one tiny Brain3D (16x32x32 volumes, 8 tokens) built on the session's tiny twin."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def tiny_brain3d(tiny_models):
    """A random tiny Brain3D (treat as read-only; planted tests patch a copy of its parts, never it)."""
    import torch

    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    torch.manual_seed(0)
    return Brain3D.build(tiny_config(tiny_models), device="cpu")
