"""`brain3d report` and `evaluate` in two CPU processes (torchrun, gloo): the same records as one process, a bad scan
in one shard stops nobody, and a rank killed mid-run followed by a rerun leaves every id exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from brain3d.cli import main
from brain3d.ranks import launch_command
from tests.train.conftest import blob_volume, make_manifest
from tests.volumes import save_nifti

AFFINE = np.eye(4)
N_SCANS = 24
ARGS = ["--max-new-tokens", "8", "--device", "cpu", "--batch-size", "2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """24 scans (left, right, healthy) and one broken file (input position 2: the first rank's shard of two)."""
    root = tmp_path_factory.mktemp("archive")
    for i in range(N_SCANS):
        side = (None, "left", "right")[i % 3]
        save_nifti(np.transpose(blob_volume(side, 100 + i), (2, 1, 0)), AFFINE, root / f"s{i:02d}_flair.nii.gz")
    raw = (root / "s00_flair.nii.gz").read_bytes()
    (root / "s01x_flair.nii.gz").write_bytes(raw[: len(raw) // 3])
    return root


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r.pop("seconds")  # wall time: the only field that may differ between two runs
    return rows


@pytest.fixture(scope="module")
def one_process(trained_checkpoint, folder, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("one") / "out"
    assert main(["report", str(folder), "-c", str(trained_checkpoint), "--out", str(out), *ARGS]) == 3  # the bad scan
    return _rows(out / "reports.jsonl")


def test_two_processes_write_the_same_records_as_one(trained_checkpoint, folder, one_process, tmp_path, capfd):
    out = tmp_path / "out"
    code = main(["report", str(folder), "-c", str(trained_checkpoint), "--out", str(out), "--processes", "2", *ARGS])
    assert code == 3  # as one process: a scan failed (not torchrun's own failure code)
    err = capfd.readouterr().err
    assert f"{N_SCANS} reported, 1 failed (2 processes)" in err  # each scan generated once, by one rank
    assert err.count("reported,") == 1  # one summary, from the main rank
    rows = _rows(out / "reports.jsonl")
    assert rows == one_process  # same content, same (input) order
    assert [r["id"] for r in rows if r["error"]] == ["s01x"]  # the bad scan is its own error record
    assert len(rows) == N_SCANS + 1 and len({r["id"] for r in rows}) == len(rows)
    assert not list(out.glob("reports.part-*"))  # merged and removed
    for r in rows:  # each rank wrote its scans' own files too
        assert json.loads((out / f"{r['id']}.json").read_text(encoding="utf-8"))["report"] == r["report"]


def _rank_process(root: psutil.Process, rank: int) -> psutil.Process | None:
    """The torchrun worker that is rank `rank` (not one of its reader processes)."""
    for p in root.children(recursive=True):
        try:
            cmd = p.cmdline()
            if "brain3d" in cmd and "report" in cmd and p.environ().get("RANK") == str(rank):
                return p
        except psutil.Error:
            continue
    return None


def test_a_killed_rank_then_a_rerun_gives_every_id_exactly_once(trained_checkpoint, folder, one_process, tmp_path,
                                                                  capfd):
    out = tmp_path / "out"
    argv = ["report", str(folder), "-c", str(trained_checkpoint), "--out", str(out), *ARGS, "--batch-size", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    proc = subprocess.Popen(launch_command(2, argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "reports.part-00001.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (part.is_file() and part.read_bytes().count(b"\n") >= 2):
            time.sleep(0.005)
        victim = _rank_process(psutil.Process(proc.pid), 1)
        assert victim is not None, "rank 1 never wrote two reports"
        victim.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    finally:
        if proc.poll() is None:
            proc.kill()
    written = {json.loads(x)["id"] for p in out.glob("reports*.jsonl")
               for x in p.read_text(encoding="utf-8").splitlines() if x.endswith("}") and '"error": null' in x}
    assert 2 <= len(written) < N_SCANS  # killed mid-run: some reports written, not all
    capfd.readouterr()
    code = main(["report", str(folder), "-c", str(trained_checkpoint), "--out", str(out), "--processes", "2", *ARGS])
    assert code == 3
    err = capfd.readouterr().err
    assert f"resuming: {len(written)} scans already reported" in err
    assert f"{N_SCANS - len(written)} reported, 1 failed (2 processes)" in err  # only what was missing
    rows = _rows(out / "reports.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in one_process]  # every id once, in input order
    assert rows == one_process
    assert not list(out.glob("reports.part-*"))


def test_evaluate_in_two_processes_scores_the_same_predictions(trained_checkpoint, tmp_path):
    cohort = make_manifest(tmp_path / "cohort", n_train=2, n_val=1, n_test=7)
    common = ["-c", str(trained_checkpoint), "-m", str(cohort), "--max-new-tokens", "8", "--device", "cpu",
              "--batch-size", "2", "--no-meteor", "--no-bertscore", "--n-boot", "50"]
    assert main(["evaluate", *common, "--out", str(tmp_path / "one")]) == 0
    assert main(["evaluate", *common, "--out", str(tmp_path / "two"), "--processes", "2"]) == 0
    one, two = (_lines(tmp_path / d / "predictions.jsonl") for d in ("one", "two"))
    assert one == two and len(one) == 7
    m1, m2 = (json.loads((tmp_path / d / "metrics.json").read_text(encoding="utf-8")) for d in ("one", "two"))
    assert m1["n"] == 7 and m1 == m2  # the main rank scored the merged predictions: every number alike


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_the_same_command_without_torchrun_stays_one_process(trained_checkpoint, folder, tmp_path, capsys):
    assert main(["report", str(folder / "s00_flair.nii.gz"), "-c", str(trained_checkpoint), *ARGS]) == 0
    err = capsys.readouterr().err
    assert "1 reported, 0 failed" in err and "processes" not in err
    assert sys.modules.get("torch.distributed") is None or not __import__("torch").distributed.is_initialized()


def test_processes_end_with_the_documented_code_on_an_input_error(folder, tmp_path, capfd):
    code = main(["report", str(folder), "-c", str(tmp_path / "missing"), "--processes", "2", *ARGS])
    assert code == 2  # as one process, not torchrun's 1
    assert "is not a brain3d checkpoint (no config.json)" in capfd.readouterr().err
