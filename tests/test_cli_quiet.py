"""A normal `brain3d report` on the tiny twin, through the installed entry point: stderr holds brain3d's own
lines and nothing from the libraries underneath; `-v` brings the libraries' warnings back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import blob_volume
from tests.volumes import save_nifti

BRAIN3D = Path(sys.executable).parent / "brain3d"
# every line `brain3d report` itself may write to stderr (brain3d/commands/report.py)
OWN_LINE = re.compile(r"^(\d+ reported, \d+ failed(, \d+ laterality-inconsistent)?|warning: .+|error: .+|note: .+"
                      r"|resuming: .+|using the demo checkpoint .+)$")


@pytest.fixture(scope="module")
def checkpoint(trained_checkpoint) -> Path:
    return trained_checkpoint


def _report(checkpoint: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    scan = save_nifti(np.transpose(blob_volume("left", 5), (2, 1, 0)), np.eye(4), tmp_path / "left.nii.gz")
    env = {k: v for k, v in os.environ.items() if k not in ("BRAIN3D_VERBOSE", "PYTHONWARNINGS")}
    env["OMP_NUM_THREADS"] = "1"
    # the paper profile sets the repetition penalty and n-gram block that transformers warns about
    return subprocess.run([str(BRAIN3D), *flags, "report", str(scan), "-c", str(checkpoint), "--device", "cpu",
                           "--max-new-tokens", "12", "--profile", "paper", "--mirror-check"],
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=600)


def test_report_stderr_holds_only_brain3d_lines(checkpoint, tmp_path):
    run = _report(checkpoint, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "── left" in run.stdout
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert lines, "the summary line is missing"
    assert [x for x in lines if not OWN_LINE.match(x)] == []
    assert lines[-1].startswith("1 reported, 0 failed")


def test_verbose_shows_the_libraries_again(checkpoint, tmp_path):
    run = _report(checkpoint, tmp_path, "-v")
    assert run.returncode == 0, run.stderr
    assert "Passing `repetition_penalty`" in run.stderr  # transformers' UserWarning, filtered without -v
    assert "LOAD REPORT" in run.stderr  # transformers' loading table
    assert any(not OWN_LINE.match(x) for x in run.stderr.splitlines() if x.strip())  # what the first test rules out
