"""The side a report names, end to end, for a model known to read the side from its image (`tests.planted`): the
same physical head with its blob on the patient's left (world x < 0) or right, acquired axis-aligned or oblique
(35 and 40 degrees in two planes), stored as NIfTI in several axis orders or as a DICOM series, must be reported
on that side, and its left-right mirror on the other; a model that writes a template must be flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest

import brain3d.commands.report as report_command
from brain3d.cli import main
from brain3d.eval.evaluate import preprocess_for
from brain3d.reporting.inputs import discover
from brain3d.reporting.runner import ReportOptions, generate_records
from tests.planted import ImageBlind, SideReader
from tests.volumes import BLOB_RIGHT, BLOB_WORLD, oblique_grid, ras_grid, reoriented, save_nifti, write_dicom_series

EXTRA = {"train_config": {"data": {"high": 100.0}}}  # only the blob's peak saturates: the reader sees the blob
OTHER = {"left": "right", "right": "left"}
BLOBS = {"left": BLOB_WORLD, "right": BLOB_RIGHT}


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[tuple[str, str], str]:
    """(kind, side) -> a scan path: axis-aligned RAS and LPS NIfTI, oblique NIfTI stored LIP, oblique DICOM (PRI)."""
    root = tmp_path_factory.mktemp("lat")
    out = {}
    for side, blob in BLOBS.items():
        data, affine = ras_grid(shape=(40, 48, 36), spacing=(4.0, 4.0, 4.0))
        if side == "right":
            data = data[::-1].copy()  # the RAS grid is centred on x = 0: reversing x moves the blob to x > 0
        out[("ras", side)] = str(save_nifti(data, affine, root / f"ras_{side}.nii.gz"))
        out[("lps", side)] = str(save_nifti(*reoriented(data, affine, "LPS"), root / f"lps_{side}.nii.gz"))
        obl, obl_affine = oblique_grid(shape=(30, 32, 26), spacing=(6.0, 6.0, 7.0), blob=blob)
        out[("oblique", side)] = str(save_nifti(*reoriented(obl, obl_affine, "LIP"), root / f"obl_{side}.nii.gz"))
        stored, stored_affine = reoriented(np.round(obl).astype(np.int16), obl_affine, "PRI")
        out[("dicom", side)] = str(write_dicom_series(stored, stored_affine, root / f"dcm_{side}",
                                                      f"1.2.826.0.1.3680043.8.498.{3 if side == 'left' else 4}"))
    return out


@pytest.mark.parametrize("kind", ["ras", "lps", "oblique", "dicom"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_the_reported_side_is_the_world_side_and_the_mirror_reports_the_other(scans, kind, side):
    model = SideReader(extra=EXTRA)
    (scan,) = discover([scans[(kind, side)]])
    opts = ReportOptions(checkpoint="planted", batch_size=1, mirror_check=True, max_new_tokens=8)
    (rec,) = generate_records(model, [scan], opts, preprocess_for(model))
    assert rec.error is None
    assert rec.findings.side == side
    assert rec.mirrored_side == OTHER[side]
    assert rec.laterality_consistent is True


def test_a_template_writer_is_flagged_by_the_mirror_check_on_the_command_line(scans, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(report_command, "load_with_sequences", lambda ckpt, opts, seqs: (ImageBlind(extra=EXTRA),
                                                                                         ("flair",)))
    paths = [scans[("oblique", "right")], scans[("dicom", "right")]]
    assert main(["report", *paths, "-c", str(tmp_path), "--json", "--mirror-check", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [r["findings"]["side"] for r in rows] == ["left", "left"]  # the template, whatever the scan
    assert all(r["mirrored_side"] == "left" and r["laterality_consistent"] is False for r in rows)
    assert err.count("the reported side did not flip when the scan was mirrored (left → left)") == 2


def test_the_command_line_reports_the_world_side_of_oblique_nifti_and_dicom(scans, monkeypatch, capsys, tmp_path):
    model = SideReader(extra=EXTRA)
    monkeypatch.setattr(report_command, "load_with_sequences", lambda ckpt, opts, seqs: (model, ("flair",)))
    kinds = [(k, s) for k in ("oblique", "dicom") for s in ("left", "right")]
    assert main(["report", *(scans[k] for k in kinds), "-c", str(tmp_path), "--json", "--mirror-check",
                 "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [(r["findings"]["side"], r["mirrored_side"]) for r in rows] == [(s, OTHER[s]) for _, s in kinds]
    assert all(r["laterality_consistent"] is True for r in rows) and "did not flip" not in err
    # the NIfTI keeps its stored order; the series reader stacks slices along the slice normal (here superior)
    assert [r["orientation"] for r in rows] == ["LIP", "LIP", "PRS", "PRS"]
