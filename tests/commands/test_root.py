"""`brain3d --version` and `-v/--verbose`, the options of brain3d itself."""

from __future__ import annotations

from importlib import metadata

import torch

import brain3d
from brain3d import quiet
from brain3d.cli import main


def test_version_names_package_torch_transformers_and_device(capsys):
    assert main(["--version"]) == 0
    lines = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["brain3d"] == brain3d.__version__
    assert lines["torch"] == torch.__version__
    assert lines["transformers"] == metadata.version("transformers")
    assert lines["device"].split()[0] == ("cuda" if torch.cuda.is_available() else "cpu")


def test_verbose_holds_for_the_run_and_ends_with_it(monkeypatch, capsys):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    seen = []
    monkeypatch.setattr("brain3d.commands.volume.inspect_volume", lambda *a: seen.append(quiet.is_verbose()) or {})
    assert main(["-v", "inspect", "scan.nii.gz", "--json"]) == 0
    assert main(["inspect", "scan.nii.gz", "--json"]) == 0
    assert seen == [True, False]  # -v reached the command, and did not outlive its run
    assert not quiet.is_verbose()
