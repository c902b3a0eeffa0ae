"""`brain3d synth`: write the synthetic phantom cohort, the embedded default data set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def synth(
        out_dir: Path = typer.Argument(..., help="Folder to write (new, empty, or an earlier synthetic cohort)."),
        n_pathological: int = typer.Option(160, "--n-pathological", help="Subjects with a tumour."),
        n_healthy: int = typer.Option(40, "--n-healthy", help="Healthy subjects."),
        seed: int = typer.Option(42, "--seed", help="Same seed, byte-identical cohort."),
        sequences: str = typer.Option("flair", "--sequences", help="Comma-separated subset of flair,t1,t1ce,t2."),
        workers: int = typer.Option(min(4, os.cpu_count() or 1), "--workers",
                                    help="Processes; the output does not depend on it."),
        voxel_mm: float = typer.Option(2.0, "--voxel-mm", help="Base voxel size in mm (storage grids scale with it)."),
        preview: Optional[Path] = typer.Option(None, "--preview", help="Also write a tri-planar PNG of subjects."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    ) -> None:
        """Generate phantom brain MRIs with exact ground truth, lesion masks, reports and a split manifest."""
        from brain3d.data.manifest import read_manifest
        from brain3d.synth.cohort import make_cohort

        seqs = tuple(s.strip().lower() for s in sequences.split(",") if s.strip())
        manifest = make_cohort(out_dir, n_pathological, n_healthy, seed, seqs, workers, not quiet, voxel_mm)
        records = read_manifest(manifest)
        counts = {s: sum(r.split == s for r in records) for s in ("train", "val", "test")}
        typer.echo(f"wrote {len(records)} subjects to {out_dir} (manifest {manifest.name}; "
                   + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
        if preview is not None:
            from brain3d.synth.preview import write_preview

            typer.echo(f"preview: {write_preview(manifest, preview)}")
