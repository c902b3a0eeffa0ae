"""`brain3d baseline medgemma-2d`: the paper's 2D-slice MedGemma baseline on a manifest split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from brain3d.commands.evaluate import DEVICE, LIMIT, MANIFEST, SPLIT

baseline_app = typer.Typer(help="Baselines run on the same manifest as Brain3D (score them with `brain3d score`).",
                           no_args_is_help=True)


@baseline_app.command("medgemma-2d")
def medgemma_2d(
    model: Path = typer.Option(..., "--model", help="Local folder of a Gemma-3 multimodal model (MedGemma) "
                                                    "with its processor."),
    manifest: Path = MANIFEST,
    out: Path = typer.Option(..., "--out", help="Folder for predictions.jsonl and baseline.json (resumes)."),
    split: str = SPLIT,
    slices: int = typer.Option(64, "--slices", min=1, help="Equidistant axial slices fed as images."),
    slice_size: int = typer.Option(128, "--slice-size", min=8, help="Slice height and width in model space."),
    nonzero: bool = typer.Option(False, "--nonzero", help="Intensity percentiles over nonzero voxels only "
                                                         "(as a checkpoint trained on skull-stripped scans)."),
    batch: int = typer.Option(1, "--batch", min=1, help="Subjects generated together."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest report, in tokens."),
    limit: Optional[int] = LIMIT,
    device: str = DEVICE,
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """N axial FLAIR slices interleaved with "SLICE n", Brain3D's instruction, greedy decoding; writes
    predictions.jsonl in the format `brain3d score` reads."""
    from brain3d.baselines.medgemma2d import SliceBaselineOptions, run_slice_baseline

    t0 = time.perf_counter()
    opts = SliceBaselineOptions(split=None if split == "all" else split, slices=slices, slice_size=slice_size,
                                nonzero=nonzero, batch_size=batch, max_new_tokens=max_new_tokens,
                                limit=limit, device=device, progress=progress)
    info = run_slice_baseline(model, manifest, out, opts)
    typer.echo(f"generated {info['n_subjects']} reports ({info['prefill_tokens']} prefill tokens each, "
               f"{info['image_tokens']} of them image tokens) in {time.perf_counter() - t0:.1f} s -> {out}")
    typer.echo(f"score them with: brain3d score {out / 'predictions.jsonl'} --out {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(baseline_app, name="baseline")
