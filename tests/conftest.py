"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tiny models run several times faster on one thread than on two contended ones (measured on the 2-core CI).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny random twin of MedSigLIP / MedGemma, written once per test session:
    {"vision": SiglipModel folder, "language": Gemma3ForConditionalGeneration folder + tokenizer}.
    Build a model on it with `Brain3D.build(brain3d.twin.tiny.tiny_config(tiny_models, **overrides))`."""
    from brain3d.twin.tiny import make_tiny_models

    return make_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """The phase-2B checkpoint of one fast three-phase run on the small training manifest (tests.train.conftest),
    trained once per session for every test that reports with a model (treat it as read-only)."""
    from brain3d.train.run import train
    from tests.train.conftest import fast_config, make_manifest

    root = tmp_path_factory.mktemp("trained-run")
    train(fast_config(), make_manifest(root / "cohort"), root / "run", progress=False,
          vision_model=tiny_models["vision"], language_model=tiny_models["language"])
    return root / "run" / "phase2b"


@pytest.fixture(scope="session")
def median_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path]) -> Path:
    """An untrained tiny checkpoint whose training config chose the median intensity scaling (the shipped one):
    every command must preprocess its scans that way, not with the percentile default."""
    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("median-checkpoint") / "ckpt"
    extra = {"train_config": {"data": {"scaling": "median", "low": 1.0, "high": 99.0, "nonzero": False}}}
    return Brain3D.build(tiny_config(tiny_models)).save_pretrained(path, extra=extra)
