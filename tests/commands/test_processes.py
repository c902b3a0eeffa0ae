"""`--processes`: the ranks get back the command line the user gave, less --processes."""

from __future__ import annotations

import typer

from brain3d.cli import root_command
from brain3d.commands.processes import params_argv


def _parsed(words: list[str]):
    cmd = root_command().commands[words[0]]
    ctx = cmd.make_context(words[0], list(words[1:]))
    return cmd, ctx.params


def test_report_arguments_survive_the_round_trip():
    words = ["report", "a.nii.gz", "dir/", "-c", "ck", "--out", "o", "--json", "--batch-size", "3",
             "--mirror-check", "--processes", "2", "--workers", "0"]
    cmd, params = _parsed(words)
    again = params_argv(cmd, params, drop=("processes",))
    assert "--processes" not in again
    cmd2, params2 = _parsed(["report", *again])
    assert {k: v for k, v in params2.items() if k != "processes"} == \
        {k: v for k, v in params.items() if k != "processes"}
    assert params2["processes"] == 1


def test_evaluate_arguments_survive_the_round_trip():
    words = ["evaluate", "-c", "ck", "-m", "m.jsonl", "--out", "o", "--no-bertscore", "--n-boot", "50",
             "--split", "all", "--processes", "2"]
    cmd, params = _parsed(words)
    cmd2, params2 = _parsed(["evaluate", *params_argv(cmd, params, drop=("processes",))])
    assert {k: v for k, v in params2.items() if k != "processes"} == \
        {k: v for k, v in params.items() if k != "processes"}


def test_typer_is_what_the_cli_uses():
    assert isinstance(root_command(), typer.core.TyperGroup)
