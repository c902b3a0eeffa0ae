"""`brain3d explain`: 3D LIME maps of why the model wrote what it wrote, on the scan's own grid."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        inputs: Optional[list[str]] = typer.Argument(None, help="Scans, as for `brain3d report`: NIfTI files, DICOM "
                                                               "series folders, folders, manifests (.jsonl), or "
                                                               "comma-joined sequence files."),
        out: Path = typer.Option(..., "--out", help="Write <id>_lime.nii.gz/.png/.json and explanations.jsonl here."),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="Trained checkpoint folder "
                                                                                   "(default: the demo's)."),
        target: str = typer.Option("report", "--target", help="report (−NLL of the model's own report), side (why "
                                                               "left and not right?), lobes, findings, or a phrase "
                                                               "of the report in quotes."),
        samples: int = typer.Option(100, "--samples", min=2, help="Perturbed volumes (LIME samples) per scan."),
        segments: int = typer.Option(20, "--segments", min=2, help="SLIC supervoxels inside the brain."),
        batch: int = typer.Option(16, "--batch", min=1, help="Perturbed volumes per forward pass."),
        seed: int = typer.Option(42, "--seed", help="Seed of the perturbations."),
        manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explain a manifest's subjects; with lesion "
                                                                         "masks, also print the pointing game."),
        split: Optional[str] = typer.Option(None, "--split", help="Only this split of --manifest (train/val/test)."),
        fill: str = typer.Option("median", help="What a switched-off supervoxel becomes: median (the brain's) or "
                                                "zero (the reference code's)."),
        lobes_from_mni: bool = typer.Option(False, "--lobes-from-mni", help="World coordinates are MNI mm (phantoms, "
                                                                            "registered scans): name each region's "
                                                                            "lobe."),
        png: bool = typer.Option(True, "--png/--no-png", help="Write the tri-planar PNG of each scan."),
        max_new_tokens: int = typer.Option(256, help="Longest generated report, in tokens."),
        vision_model: Optional[Path] = typer.Option(None, help="Override the vision base-model folder."),
        language_model: Optional[Path] = typer.Option(None, help="Override the language base-model folder."),
        sequences: Optional[str] = typer.Option(None, help="Comma list; default: the checkpoint's sequences."),
        series_uid: Optional[str] = typer.Option(None, "--series-uid", help="DICOM series to read from a folder."),
        device: str = typer.Option("auto", help="auto, cpu or cuda."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Explain reports with 3D LIME over supervoxels: maps that open over the scan in any viewer."""
        from brain3d.commands.report import resolve_checkpoint
        from brain3d.explain import ExplainConfig

        if not inputs and manifest is None:
            raise typer.BadParameter("give scans to explain, or --manifest")
        if split is not None and manifest is None:
            raise typer.BadParameter("--split selects subjects of --manifest; give --manifest too")
        cfg = ExplainConfig(target=target, samples=samples, segments=segments, batch=batch, seed=seed, fill=fill,
                            max_new_tokens=max_new_tokens, lobes_from_mni=lobes_from_mni, png=png)
        ckpt, is_demo = resolve_checkpoint(checkpoint)
        if is_demo:
            typer.echo(f"using the demo checkpoint {ckpt} (pass --checkpoint to choose another)", err=True)
        summary = run_explain(list(inputs or []), ckpt, out, cfg, manifest=manifest, split=split, device=device,
                              vision_model=vision_model, language_model=language_model, sequences=sequences,
                              series_uid=series_uid, progress=progress)
        if summary["failed"]:
            raise typer.Exit(code=3)


def run_explain(inputs: list[str], ckpt: Path, out: Path, cfg, *, manifest: Path | None = None,
                split: str | None = None, device: str = "auto", vision_model=None, language_model=None,
                sequences: str | None = None, series_uid: str | None = None, progress: bool = True) -> dict:
    """Load the model once, explain every scan (skipping those already explained for this target in `out`),
    print one line per scan and, when scans had lesion masks, the pointing game; returns counts and the game."""
    from rich.progress import Progress

    from brain3d.commands.report import load_with_sequences
    from brain3d.eval.evaluate import EvaluateOptions
    from brain3d.explain import explain_scans
    from brain3d.explain.outputs import ExplanationLog
    from brain3d.explain.pointing import format_summary, write_game
    from brain3d.reporting.inputs import discover, from_manifest

    model, seqs = load_with_sequences(ckpt, EvaluateOptions(device=device, vision_model=vision_model,
                                                            language_model=language_model), sequences)
    scans = (discover(inputs, seqs, series_uid=series_uid) if inputs else []) + (
        from_manifest(manifest, seqs, split) if manifest is not None else [])
    log = ExplanationLog(out)
    done = log.done(cfg.target)
    if done:
        typer.echo(f"resuming: {len(done)} scans already explained for --target {cfg.target} in {out}", err=True)
    todo = [s for s in scans if s.id not in done]
    counts = {"explained": 0, "failed": 0}
    rows = [done[s.id] for s in scans if s.id in done]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("explaining", total=len(todo))
        for exp in explain_scans(model, todo, cfg, out=out):
            counts["failed" if exp.error else "explained"] += 1
            if exp.error:
                typer.echo(f"error: {exp.error}", err=True)
            else:
                rows.append(exp.row())
                top = exp.top[0] if exp.top else None
                where = (f"top supporting region {top['label']} ({top['side']}"
                         + (f", {top['lobe']}" if top["lobe"] else "") + f"), weight {top['weight']:.3g}"
                         if top else "no supporting region")
                typer.echo(f"{exp.id}: {cfg.target}" + (f" ({', '.join(exp.words)})" if exp.words else "")
                           + f": {where}; R² {exp.r2:.2f}; {exp.seconds:.1f} s")
            bar.advance(task)
    log.compact()
    game = write_game(rows, out, cfg.target, split)
    if game is not None:
        typer.echo(format_summary(game, cfg.target))
    typer.echo(f"{counts['explained']} explained, {counts['failed']} failed", err=True)
    return {**counts, "pointing": game}
