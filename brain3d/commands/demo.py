"""`brain3d demo`: the README's main command."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo_out"), "--out", help="Output folder (resumes if it exists)."),
        quick: bool = typer.Option(False, "--quick", help="CI-sized run (< 2 minutes on 2 CPU cores)."),
        progress: bool = typer.Option(True, help="Show progress bars."),
    ) -> None:
        """Synthetic cohort → tiny twin → three training phases → evaluation + ablation → OUT/index.html."""
        from brain3d.demo.pipeline import DemoConfig, run_demo

        summary = run_demo(out, DemoConfig.quick() if quick else DemoConfig(), progress=progress,
                           log=lambda s: typer.echo(s, err=True))
        for key, e in summary["headline"].items():
            if key == "targets" or e.get("mean") is None:
                continue
            target = summary["headline"]["targets"].get(key)
            note = "" if target is None else ("  (target met)" if target["met"] else f"  (target {target['target']:.2f} not met)")
            typer.echo(f"{key:22s} {e['mean']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]  n={e['n']}{note}")
        typer.echo(f"open {out / 'index.html'}")
