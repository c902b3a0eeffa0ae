"""`--processes N` for the inference commands: run this very command as N local torchrun ranks.

The ranks get the command line the user typed, less `--processes`, rebuilt from the parsed parameters (so
`brain3d.cli.main([...])` from Python works as well as the console script). The main rank hands its exit code
back through a file, so that `brain3d report --processes 2` ends exactly as one process would (0, or 3 when a
scan failed) instead of with torchrun's failure banner.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

EXIT_FILE = "BRAIN3D_EXIT_FILE"  # set by the launcher for its ranks: where the main rank writes the exit code


def params_argv(command: Any, params: dict[str, Any], drop: tuple[str, ...] = ()) -> list[str]:
    """The arguments that make `command` (the CLI framework's command object) parse to `params` again: options
    first, then the positional ones."""
    argv: list[str] = []
    positional: list[str] = []
    for p in command.params:
        if p.name in drop or p.name not in params:
            continue
        value = params[p.name]
        if p.param_type_name == "argument":
            positional += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            continue
        if value is None or value == p.default and not p.multiple:
            continue  # the default: nothing to say
        if p.is_flag:
            if value:
                argv.append(p.opts[0])
            elif p.secondary_opts:
                argv.append(p.secondary_opts[0])
            continue
        for v in (value if p.multiple else [value]):
            argv += [p.opts[0], str(v)]
    return argv + positional


def relaunch(ctx: Any, processes: int, threads: int = 1) -> int:
    """Run the command of `ctx` (the framework's context of the running command) as `processes` local ranks;
    returns the main rank's exit code (torchrun's when the ranks died before saying one)."""
    from brain3d.ranks import launch

    argv = [ctx.info_name, *params_argv(ctx.command, ctx.params, drop=("processes",))]
    fd, name = tempfile.mkstemp(prefix="brain3d-exit-")
    os.close(fd)
    try:
        code = launch(processes, argv, threads, env={EXIT_FILE: name})
        said = Path(name).read_text(encoding="utf-8").strip()
        return int(said) if said else code
    finally:
        Path(name).unlink(missing_ok=True)


def hand_back(code: int) -> int:
    """A rank that ends with an error (exit code `code` ≠ 0) also tells the launcher, so that `--processes` ends
    with the documented code (2: a usage or input error) rather than torchrun's 1; the rank still exits with it,
    so torchrun stops the other ranks."""
    if code:
        _tell_launcher(code)
    return code


def rank_exit(code: int, main: bool) -> int:
    """The exit code a rank ends with: under `--processes`, the main rank writes the run's code for the launcher
    and every rank ends 0 (no torchrun banner for a failed scan); under a plain torchrun, the code itself."""
    if not os.environ.get(EXIT_FILE):
        return code
    if main:
        _tell_launcher(code)
    return 0


def _tell_launcher(code: int) -> None:
    """Write `code` where the `--processes` launcher reads it (nothing outside such a launcher)."""
    target = os.environ.get(EXIT_FILE)
    if target:
        Path(target).write_text(str(code), encoding="utf-8")
