"""The options of `brain3d` itself: `--version` (what a bug report needs) and `-v/--verbose`."""

from __future__ import annotations

import platform
from importlib import metadata

import typer

from brain3d import quiet


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_lines() -> list[str]:
    """brain3d, Python, torch, transformers, PEFT and the device `--device auto` would pick."""
    import torch

    import brain3d

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
    else:
        device = "cpu (no CUDA device visible" + ("" if torch.version.cuda else "; this torch is a CPU build") + ")"
    return [
        f"brain3d {brain3d.__version__}",
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"transformers {_dist_version('transformers')}",
        f"peft {_dist_version('peft')}",
        f"device {device}",
    ]


def _show_version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


def register(app: typer.Typer) -> None:
    @app.callback()
    def root(
        version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                     help="Print the versions of brain3d, torch, transformers and the device "
                                          "`--device auto` would use, then exit."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show third-party libraries' warnings "
                                                                    "(same as BRAIN3D_VERBOSE=1)."),
    ) -> None:
        """Radiology reports from native 3D brain MRI (Brain3D method)."""
        if verbose:
            quiet.set_verbose(True)
