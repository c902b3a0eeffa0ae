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
