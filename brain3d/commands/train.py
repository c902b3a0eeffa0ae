"""`brain3d train`: the three training phases on a manifest (also under torchrun for several processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        config: str = typer.Option(..., "--config", help="A profile (paper, tiny) or a YAML run config."),
        manifest: Path = typer.Option(..., "--manifest", help="Manifest JSONL (train and val splits are used)."),
        out: Path = typer.Option(..., "--out", help="Run folder: checkpoints phase1/, phase2a/, phase2b/, logs."),
        phases: str = typer.Option("1,2a,2b", "--phases", help="Phases to run, in order, e.g. 1,2a,2b or 2b."),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
        vision_model: Optional[Path] = typer.Option(None, "--vision-model", help="Local SigLIP / MedSigLIP folder."),
        language_model: Optional[Path] = typer.Option(None, "--language-model", help="Local Gemma-3 / MedGemma folder."),
        set_: List[str] = typer.Option([], "--set", help="Override a setting, e.g. --set phases.2a.epochs=3 (repeatable)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        processes: int = typer.Option(
            1, "--processes", min=1,
            help="Train in this many local processes (data-parallel, as torchrun --nproc_per_node N: one per CPU core "
                 "or GPU); the per-process batch is the config's, so the effective batch is N times it."),
    ) -> None:
        """Train Brain3D: phase 1 contrastive grounding, phase 2A projector warm-up, phase 2B LoRA."""
        from brain3d.errors import OutputError
        from brain3d.fsutil import output_error
        from brain3d.train.config import load_config
        from brain3d.ranks import under_launcher
        from brain3d.train.launch import run_processes, train_argv
        from brain3d.train.run import train

        cfg = load_config(config, set_)
        if processes > 1 and not under_launcher():
            run_processes(processes, train_argv(config, manifest, out, phases, resume, vision_model, language_model,
                                                set_, quiet), threads=cfg.threads or 1)
            return
        try:
            summary = train(cfg, manifest, out, phases=phases, resume=resume, progress=not quiet,
                            vision_model=vision_model, language_model=language_model)
        except OutputError as exc:  # finished phases and the last epoch's state are kept: --resume goes on from there
            raise output_error(exc, exc.path, "then rerun with --resume to continue from the last saved epoch") from None
        if summary.get("world_size", 1) == 1 or _rank() == 0:
            typer.echo(json.dumps(_short(summary), indent=2))


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _short(summary: dict) -> dict:
    keys = ("checkpoint", "best_val_loss", "initial_val_loss", "epochs_run", "steps", "seconds", "ignores_image")
    return {
        "run_dir": summary.get("run_dir"),
        "seconds": summary.get("seconds"),
        "phases": {n: {k: p.get(k) for k in keys} for n, p in summary.get("phases", {}).items()},
    }
