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
    ) -> None:
        """Write random-initialised tiny SigLIP and Gemma-3 checkpoints plus an offline-trained tokenizer."""
        from brain3d.model.tiny import describe, make_tiny_models

        paths = make_tiny_models(out_dir, seed=seed)
        typer.echo(json.dumps(describe(paths), indent=2))
