"""Several local training processes without typing torchrun: `brain3d train --processes N` and the demo.

`brain3d train` already runs data-parallel under `torchrun --nproc_per_node N` (DDP; gloo on CPU, one process per
GPU on CUDA). This module starts exactly that — `python -m torch.distributed.run --standalone` over `python -m
brain3d train ...` — so that a 2-core machine trains on both cores and a 4-GPU box on all four with one flag. A
process that is already one of torchrun's ranks never launches again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from brain3d.errors import TrainingError
from brain3d.ranks import launch


def run_processes(processes: int, argv: Sequence[str], threads: int = 1) -> None:
    """Run `brain3d <argv>` as `processes` local ranks and wait; a failed rank raises TrainingError."""
    code = launch(processes, argv, threads)
    if code != 0:
        raise TrainingError(f"{processes} training processes ended with exit code {code} (see the output "
                            "above); rerun the same command with --resume to continue from the last finished epoch")


def train_argv(config: str | Path, manifest: str | Path, out: str | Path, phases: str = "1,2a,2b", resume: bool = False,
               vision_model: str | Path | None = None, language_model: str | Path | None = None,
               overrides: Sequence[str] = (), quiet: bool = False) -> list[str]:
    """The `brain3d train ...` arguments of one run (what every rank executes)."""
    argv = ["train", "--config", str(config), "--manifest", str(manifest), "--out", str(out), "--phases", phases]
    argv += ["--resume"] if resume else []
    argv += ["--vision-model", str(vision_model)] if vision_model is not None else []
    argv += ["--language-model", str(language_model)] if language_model is not None else []
    for item in overrides:
        argv += ["--set", item]
    return argv + (["--quiet"] if quiet else [])
