"""The single entry point `brain3d`.

Each command lives in a module of `brain3d.commands` with a `register(app)` function, so this file only
assembles them and turns the package's own errors into one clear line and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import typer

from brain3d.errors import Brain3DError

COMMAND_MODULES = [
    "brain3d.commands.volume",
    "brain3d.commands.report",
    "brain3d.commands.evaluate",
    "brain3d.commands.model",
    "brain3d.commands.train",
    "brain3d.commands.synth",
    "brain3d.commands.demo",
    "brain3d.commands.baseline",
]

app = typer.Typer(
    name="brain3d",
    help="Radiology reports from native 3D brain MRI (Brain3D method).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a Brain3DError becomes one line on stderr and exit code 2 (no traceback)."""
    try:
        rv = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here instead of raising
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except Brain3DError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted; finished outputs were kept", err=True)
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def entry() -> None:
    sys.exit(main())
