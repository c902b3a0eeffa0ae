"""`brain3d report` on a checkpoint from a tiny training run: NIfTI, DICOM, folders, errors, schema, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from brain3d.cli import main
from brain3d.reporting.schema import ReportRecord
from brain3d.vocabulary import unassessable_statements
from tests.train.conftest import blob_volume
from tests.volumes import reoriented, save_nifti, write_dicom_series

AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def checkpoint(trained_checkpoint) -> Path:
    return trained_checkpoint


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    """One physical scan (left blob) stored RAS and LPS, a DICOM series of it, and a folder of scans."""
    root = tmp_path_factory.mktemp("scans")
    ras = np.transpose(blob_volume("left", 5), (2, 1, 0))  # model (D, H, W) → stored RAS (x, y, z)
    out = {"ras": save_nifti(ras, AFFINE, root / "left_ras.nii.gz"),
           "lps": save_nifti(*reoriented(ras, AFFINE, "LPS"), root / "left_lps.nii.gz")}
    out["dicom"] = write_dicom_series(np.round(ras * 1000).astype(np.int16), AFFINE, root / "dicom", "1.2.826.0.1.5")
    folder = root / "folder"
    folder.mkdir()
    for i, side in enumerate(("left", "right", None)):
        save_nifti(np.transpose(blob_volume(side, 10 + i), (2, 1, 0)), AFFINE, folder / f"s{i}_flair.nii.gz")
    out["folder"] = folder
    bad = root / "broken.nii.gz"
    raw = out["ras"].read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    out["bad"] = bad
    return out


def _run(args: list[str], capsys) -> tuple[int, list[dict]]:
    code = main(["report", *args, "--json", "--max-new-tokens", "12", "--device", "cpu"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return code, lines


def test_nifti_dicom_and_folder_inputs(checkpoint, scans, capsys):
    code, rows = _run([str(scans["ras"]), str(scans["dicom"]), str(scans["folder"]), "-c", str(checkpoint)], capsys)
    assert code == 0
    assert [r["id"] for r in rows] == ["left_ras", "dicom", "s0", "s1", "s2"]
    for r in rows:
        rec = ReportRecord.model_validate(r)  # the documented schema
        assert rec.error is None and rec.checkpoint == str(checkpoint) and rec.profile == "greedy"
        assert rec.findings is not None and rec.seconds > 0
        # a FLAIR-only checkpoint: enhancement is not assessable, and what the text says of it is flagged
        assert rec.sequences == ["flair"] and rec.findings.enhancement is None
        said = unassessable_statements(rec.report, ["flair"])
        assert rec.asserts_unassessable == [f for f, v in said.items() if v == "present"]
    assert rows[0]["orientation"] == rows[1]["orientation"] == "RAS"  # the DICOM was written with RAS voxel axes


def test_same_scan_in_two_orientations_gives_the_same_report(checkpoint, scans, capsys):
    _, rows = _run([str(scans["ras"]), str(scans["lps"]), "-c", str(checkpoint)], capsys)
    assert [r["orientation"] for r in rows] == ["RAS", "LPS"]
    assert rows[0]["report"] == rows[1]["report"]


def test_unreadable_file_does_not_stop_the_others(checkpoint, scans, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["report", str(scans["bad"]), str(scans["ras"]), "-c", str(checkpoint), "--out", str(out),
                 "--max-new-tokens", "8", "--device", "cpu", "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 3  # some scans failed
    assert "broken.nii.gz: is truncated or corrupt" in err
    rows = [json.loads(x) for x in (out / "reports.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: bool(r["error"]) for r in rows} == {"broken": True, "left_ras": False}
    assert (out / "left_ras.txt").read_text(encoding="utf-8").strip() == rows[1]["report"].strip()
    assert json.loads((out / "broken.json").read_text(encoding="utf-8"))["error"].endswith("is truncated or corrupt (" +
                                                                          rows[0]["error"].split("(", 1)[1])
    # a second run resumes: the finished scan is skipped, the failed one is tried again
    code = main(["report", str(scans["bad"]), str(scans["ras"]), "-c", str(checkpoint), "--out", str(out),
                 "--max-new-tokens", "8", "--device", "cpu"])
    assert code == 3
    assert "resuming: 1 scans already reported" in capsys.readouterr().err
    assert len((out / "reports.jsonl").read_text(encoding="utf-8").splitlines()) == 2  # one row per id after compaction


def test_mirror_check_fields(checkpoint, scans, capsys):
    code, rows = _run([str(scans["ras"]), "-c", str(checkpoint), "--mirror-check"], capsys)
    assert code == 0
    r = rows[0]
    assert r["mirrored_report"] is not None
    from brain3d.vocabulary import side_of

    expected = {"left": "right", "right": "left", "bilateral": "bilateral", None: None}[r["findings"]["side"]]
    assert r["mirrored_side"] == side_of(r["mirrored_report"])
    assert r["laterality_consistent"] == (r["mirrored_side"] == expected)  # the oracle is written out, not the code's


def test_documented_schema_matches_the_model():
    documented = json.loads((Path(__file__).parents[2] / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    assert documented == ReportRecord.model_json_schema()


def test_no_checkpoint_and_no_demo_is_a_clear_error(tmp_path, monkeypatch, capsys, scans):
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(scans["ras"])]) == 2
    assert "no --checkpoint given and no demo checkpoint found" in capsys.readouterr().err


@pytest.mark.parametrize("trouble", ["full", "read-only"])
def test_a_full_or_read_only_disk_stops_with_one_sentence_and_the_rerun_finishes(checkpoint, scans, tmp_path, capsys,
                                                                                  monkeypatch, trouble):
    from tests.disk import Disk, leftovers

    out = tmp_path / "out"
    args = ["report", str(scans["folder"]), "-c", str(checkpoint), "--out", str(out), "--max-new-tokens", "8",
            "--device", "cpu", "--batch-size", "1"]
    disk = Disk(monkeypatch, writes=4)  # the first scan's .txt, .json and row; the second's .txt; then full
    if trouble == "read-only":
        disk.writes, disk.read_only = None, True
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    problem = "no space is left on the device; free space" if trouble == "full" else \
        "the file system is read-only; make it writable or choose another folder"
    assert err[-1] == f"error: {out}: cannot write here: {problem}, then rerun to resume (finished results are kept)"
    assert leftovers(tmp_path) == []  # nothing half-written
    rows = (out / "reports.jsonl").read_text(encoding="utf-8").splitlines() if trouble == "full" else []
    assert [json.loads(r)["id"] for r in rows] == (["s0"] if trouble == "full" else [])
    disk.free_space()
    assert main(args) == 0
    assert ("resuming: 1 scans already reported" in capsys.readouterr().err) == (trouble == "full")
    rows = [json.loads(r) for r in (out / "reports.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in rows) == ["s0", "s1", "s2"]  # every record once
    for r in rows:
        assert ReportRecord.model_validate_json((out / f"{r['id']}.json").read_text(encoding="utf-8")).report == r["report"]
