"""Wrong command lines through the installed `brain3d` entry point: one line on stderr, exit 2, no traceback.

The table is built from the app's own command tree (nested groups included), so a command registered
later is covered without editing this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from brain3d.cli import root_command

BRAIN3D = Path(sys.executable).parent / "brain3d"  # the console script pip installed next to this Python


def _number_option(cmd) -> str | None:
    """An option annotated int or float (read from the command's own function, whatever the framework)."""
    hints = typing.get_type_hints(cmd.callback)
    for p in cmd.params:
        hint = hints.get(p.name)
        if p.param_type_name == "option" and ({int, float} & {hint, *typing.get_args(hint)}):
            return p.opts[0]
    return None


def _value_option(cmd) -> str | None:
    """An option that takes a value (given last, it lacks it)."""
    for p in cmd.params:
        if p.param_type_name == "option" and not p.is_flag and not p.count:
            return p.opts[0]
    return None


def _rows(cmd, path: tuple[str, ...] = ()) -> typing.Iterator[tuple[str, tuple[str, ...], list[str]]]:
    """(what is wrong, command path the hint must name, argv) for every command in the tree."""
    subs = getattr(cmd, "commands", None)
    yield "unknown option", path, [*path, "--no-such-option"]
    if subs is not None:  # a group: a mistyped subcommand, then every subcommand
        yield "unknown command", path, [*path, "no-such-command"]
        for name, sub in sorted(subs.items()):
            yield from _rows(sub, (*path, name))
        return
    if any(p.required for p in cmd.params):  # a command without required parameters would simply run
        yield "missing argument", path, list(path)
    if (opt := _value_option(cmd)) is not None:
        yield "option without its value", path, [*path, opt]
    if (opt := _number_option(cmd)) is not None:
        yield "not a number", path, [*path, opt, "not-a-number"]


ROWS = [
    *_rows(root_command()),
    ("no command after a global option", (), ["-v"]),
    ("bad value checked by the command itself", ("report",), ["report", "scan.nii.gz", "--profile", "nosuch"]),
]


@pytest.mark.parametrize("what,path,argv", ROWS, ids=[f"{' '.join(r[2]) or '(none)'}" for r in ROWS])
def test_wrong_command_line_is_one_line_and_exit_2(what, path, argv, tmp_path):
    assert BRAIN3D.is_file(), f"the brain3d entry point is not installed next to {sys.executable}"
    env = {k: v for k, v in os.environ.items() if k != "BRAIN3D_VERBOSE"}
    run = subprocess.run([str(BRAIN3D), *argv], capture_output=True, text=True, encoding="utf-8", cwd=tmp_path, env=env,
                         timeout=120)
    lines = run.stderr.splitlines()
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, (what, run.returncode, run.stderr)
    assert run.stdout == ""
    assert len(lines) == 1, (what, run.stderr)
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"Try '{' '.join(('brain3d', *path))} --help' for help."), lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_bare_brain3d_prints_the_help():
    """Exit code as the framework decides (click >= 8.2: 2); the help, not an error line."""
    run = subprocess.run([str(BRAIN3D)], capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert "Traceback" not in run.stderr
    assert "Usage" in run.stdout and "report" in run.stdout
