"""bench/archive.py end to end on a handful of scans: every number it reports is there, and its section lands."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from tests.train.conftest import blob_volume
from tests.volumes import save_nifti

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench():
    spec = importlib.util.spec_from_file_location("archive_bench", BENCH / "archive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_archive_bench_runs_and_writes_its_section(trained_checkpoint, tmp_path):
    phantoms = tmp_path / "phantoms"
    phantoms.mkdir()
    for i in range(6):
        save_nifti(np.transpose(blob_volume(("left", "right", None)[i % 3], i), (2, 1, 0)), np.eye(4),
                   phantoms / f"p{i}_flair.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.md").write_text("# brain3d benchmarks\n\n## Other\n\nkept\n\nEvery number above ...\n")
    r = _bench().main(["--checkpoint", str(trained_checkpoint), "--phantoms", str(phantoms), "--n", "6",
                       "--repeats", "1", "--batch-size", "2", "--max-new-tokens", "4", "--small", "3",
                       "--large", "9", "--out", str(out)])
    for loop in ("cpu", "accelerator_standin"):
        x = r["in_process"][loop]
        assert 0 < x["reading_s"] < x["today_s"] and x["overlapped_s"] > 0  # reading is a part of today's loop
    assert {c["scans"] for c in r["command"].values()} == {6}  # each run reported every scan
    assert r["memory"]["small"]["scans"] == 3 and r["memory"]["large"]["scans"] == 9
    assert json.loads((out / "archive.json").read_text())["memory"]["ratio"] == r["memory"]["ratio"]
    md = (out / "results.md").read_text()
    assert "## Reports at archive scale" in md and "## Other\n\nkept" in md and md.rstrip().endswith("above ...")
