"""`brain3d tiny-models`: write the tiny random twin of MedSigLIP and MedGemma for tests and the demo."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("tiny-models")
    def tiny_models(
        out_dir: Path = typer.Argument(..., help="Folder to write; gets vision/ (SiglipModel) and language/ (Gemma-3)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random weights and of the tokenizer corpus."),
        warm_vision: int = typer.Option(
            0, "--warm-vision", min=0,
            help="Then warm the vision tower up for this many steps on captioned slices of separate phantoms "
                 "(brain3d.twin.vision_pretrain; ~1500 steps take 2 min on one CPU thread). 0: leave it random."),
    ) -> None:
        """Write random-initialised tiny SigLIP and Gemma-3 checkpoints plus an offline-trained tokenizer."""
        from brain3d.twin.tiny import describe, make_tiny_models

        paths = make_tiny_models(out_dir, seed=seed)
        info = describe(paths)
        if warm_vision:
            from brain3d.twin.vision_pretrain import VisionWarmup, pretrain_vision_model

            summary = pretrain_vision_model(paths["vision"], VisionWarmup(steps=warm_vision, seed=seed), progress=True)
            info["vision"]["warm_up"] = {k: v for k, v in summary.items() if k != "config"}
        typer.echo(json.dumps(info, indent=2))
