"""Several local training processes without typing torchrun: `brain3d train --processes N` and the demo.

`brain3d train` already runs data-parallel under `torchrun --nproc_per_node N` (DDP; gloo on CPU, one process per
GPU on CUDA). This module starts exactly that — `python -m torch.distributed.run --standalone` over `python -m
brain3d train ...` — so that a 2-core machine trains on both cores and a 4-GPU box on all four with one flag. A
process that is already one of torchrun's ranks never launches again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from brain3d.errors import TrainingError


def under_launcher() -> bool:
    """True inside a rank started by torchrun / accelerate (their environment names a world)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def launch_command(processes: int, argv: Sequence[str]) -> list[str]:
    """The command line that runs `python -m brain3d <argv>` as `processes` local ranks."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "brain3d", *argv]


def run_processes(processes: int, argv: Sequence[str], threads: int = 1) -> None:
    """Run `brain3d <argv>` as `processes` local ranks and wait; a failed rank raises TrainingError. Each rank gets
    `threads` intra-op threads (torchrun's own default of 1, said explicitly so that it does not warn)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(launch_command(processes, argv), env=env)
    if proc.returncode != 0:
        raise TrainingError(f"{processes} training processes ended with exit code {proc.returncode} (see the output "
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
