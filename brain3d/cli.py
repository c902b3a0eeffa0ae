"""The single entry point `brain3d`.

Each command lives in a module of `brain3d.commands` with a `register(app)` function, so this file only
assembles them and turns every failure a user can cause into one clear line and a non-zero exit: the
package's own errors (exit 2) and usage errors of the command-line framework (exit 2, with a
`Try 'brain3d X --help'` hint). Command modules import their heavy dependencies inside the commands, so
`--help` and usage errors answer at once.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from brain3d import quiet
from brain3d.errors import Brain3DError
from brain3d.fsutil import disk_errno, output_error

COMMAND_MODULES = [
    "brain3d.commands.root",
    "brain3d.commands.volume",
    "brain3d.commands.report",
    "brain3d.commands.explain",
    "brain3d.commands.evaluate",
    "brain3d.commands.model",
    "brain3d.commands.train",
    "brain3d.commands.synth",
    "brain3d.commands.demo",
    "brain3d.commands.baseline",
    "brain3d.commands.data",
    "brain3d.commands.serve",
]
PROG = "brain3d"

app = typer.Typer(
    name=PROG,
    help="Radiology reports from native 3D brain MRI (Brain3D method).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _framework_exceptions() -> tuple[type[Exception], type[Exception]]:
    """(ClickException, UsageError) of the click that the installed typer really raises.

    typer.BadParameter *is* that click's BadParameter, whether typer uses the click package or vendors its
    own copy (typer._click), so its base classes are the ones to catch."""
    bases = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    return bases["ClickException"], bases["UsageError"]


ClickException, UsageError = _framework_exceptions()


def root_command() -> typer.core.TyperGroup:
    """The framework's command object for `brain3d` (a group; nested groups hold their own `.commands`)."""
    return typer.main.get_command(app)  # type: ignore[return-value]


def _path_in(argv: list[str]) -> str:
    """`brain3d report` from ['-v', 'report', 'x']: the deepest (sub)command the words name."""
    path, cmd = [PROG], root_command()
    for word in argv:
        if word.startswith("-"):
            continue  # the options of groups are flags: the next word is a (sub)command or an argument
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        path.append(word)
        cmd = sub
    return " ".join(path)


def usage_message(exc: Exception, argv: list[str]) -> str:
    """One line: the framework's message and the help command of the (sub)command that was mistyped."""
    text = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        path, help_option = ctx.command_path, (ctx.help_option_names or ["--help"])[0]
    else:  # some parser errors carry no context: find the command in the words themselves
        path, help_option = _path_in(argv), "--help"
    return f"error: {text}. Try '{path} {help_option}' for help."


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a Brain3DError or a usage error becomes one line on stderr and exit code 2 (no traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    was_verbose = quiet.is_verbose()
    quiet.silence_third_party()
    try:
        rv = app(args=argv, prog_name=PROG, standalone_mode=False)  # returns typer.Exit's code instead of raising
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
    except OSError as exc:  # a full or read-only disk that no writer named: still one sentence, naming the folder
        if disk_errno(exc) is None:
            raise
        typer.echo(f"error: {output_error(exc, Path(exc.filename).parent if exc.filename else Path.cwd())}", err=True)
        return 2
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `brain3d`: help (rich prints it while formatting)
            text = exc.format_message()
            if text.strip():
                typer.echo(text)
        else:
            typer.echo(usage_message(exc, argv), err=True)
        return exc.exit_code
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    finally:
        quiet.set_verbose(was_verbose)  # `-v` lasts one run, also when main is called in-process
    return 0


def entry() -> None:
    from brain3d.commands.processes import hand_back

    sys.exit(hand_back(main()))
