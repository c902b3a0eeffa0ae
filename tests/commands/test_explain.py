"""`brain3d explain` and `brain3d report --explain` with the session's trained tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brain3d.cli import main
from brain3d.data.manifest import Record, Truth, write_manifest
from brain3d.io import write_nifti
from tests.train.conftest import blob_volume


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Three test subjects with lesion masks (the bright ball), stored LPS; one more whose scan is missing."""
    folder = tmp_path_factory.mktemp("explain_cohort")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])[[2, 1, 0, 3]]  # model (d, h, w) -> world (2w, 2h, 2d)
    affine[:3, 3] = [-31.0, -31.0, -15.0]  # centred: the midline at x = 0
    records = []
    for i, side in enumerate(["left", "right", "left"]):
        x = blob_volume(side, 20 + i)
        img = write_nifti(x, affine, folder / f"s{i}_flair.nii.gz", stored_as=("L", "P", "S"))
        seg = write_nifti((x == 1.0).astype(np.float32), affine, folder / f"s{i}_seg.nii.gz")
        records.append(Record(id=f"s{i}", split="test", images={"flair": str(img)}, mask=str(seg),
                              truth=Truth(side=side), report="A lesion."))
    records.append(Record(id="gone", split="test", images={"flair": str(folder / "gone.nii.gz")}, report=""))
    records.append(Record(id="t0", split="train", images={"flair": str(folder / "s0_flair.nii.gz")}, report=""))
    return write_manifest(records, folder / "manifest.jsonl")


def test_explain_a_manifest_split_prints_the_pointing_game(trained_checkpoint, cohort, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["explain", "--manifest", str(cohort), "--split", "test", "-c", str(trained_checkpoint), "--out", str(out),
            "--samples", "12", "--segments", "8", "--no-progress"]
    assert main(args) == 3  # one scan could not be read
    printed = capsys.readouterr()
    assert "gone.nii.gz: file not found" in printed.err and "3 explained, 1 failed" in printed.err
    assert "pointing game (target report, 3 scans with a lesion mask)" in printed.out
    assert "top supervoxel on the lesion's side: " in printed.out and "95% CI" in printed.out
    game = json.loads((out / "pointing.json").read_text())
    assert game["side_hit"]["n"] == 3 and game["side_hit"]["chance"] == 0.5
    assert 0.0 <= game["energy_in_lesion"]["mean"] <= 1.0
    for i in range(3):
        src, lime = nib.load(str(cohort.parent / f"s{i}_flair.nii.gz")), nib.load(str(out / f"s{i}_lime.nii.gz"))
        assert lime.shape == src.shape and np.allclose(lime.affine, src.affine)
        assert (out / f"s{i}_lime.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "gone_lime.json").exists() and not (out / "t0_lime.json").exists()
    rows = [json.loads(line) for line in (out / "explanations.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["gone", "s0", "s1", "s2"]

    # a rerun resumes: only the failed scan is tried again, the game still covers all three
    assert main(args) == 3
    printed = capsys.readouterr()
    assert "resuming: 3 scans already explained" in printed.err and "0 explained, 1 failed" in printed.err
    assert "3 scans with a lesion mask" in printed.out
    assert len((out / "explanations.jsonl").read_text().splitlines()) == 4  # compacted: one line per scan


@pytest.mark.parametrize("written", ["A lesion in the left frontal lobe with edema.", "No abnormality is seen."])
def test_report_with_explain_adds_the_side_explanation(trained_checkpoint, cohort, tmp_path, capsys, monkeypatch,
                                                       written):
    """The barely trained model's report is replaced by `written` (so the case is known, not whatever it wrote);
    the explanation itself runs the real model on the real scan."""
    import brain3d.reporting.runner as runner

    monkeypatch.setattr(runner, "generate_pair", lambda model, volumes, *a, **k: ([written] * len(volumes),
                                                                                  [None] * len(volumes)))
    out = tmp_path / "reports"
    scan = cohort.parent / "s0_flair.nii.gz"
    assert main(["report", str(scan), "-c", str(trained_checkpoint), "--out", str(out), "--explain",
                 "--explain-samples", "8"]) == 0
    rec = json.loads((out / "s0_flair.json").read_text())
    assert rec["report"] == written
    e = rec["explanation"]
    if "left" in written:
        assert e["error"] is None and e["word"] == "left"
        assert e["map"] == "s0_flair_lime.nii.gz" and (out / e["map"]).is_file()
        assert e["top_supporting"] and all(r["side"] in ("left", "right") and r["weight"] > 0
                                           for r in e["top_supporting"])
        lime, src = nib.load(str(out / e["map"])), nib.load(str(scan))
        assert lime.shape == src.shape and np.allclose(lime.affine, src.affine)  # the scan's own (LPS) grid
    else:
        assert e["error"].startswith(f"{scan}: its report names no side") and e["map"] is None
        assert not (out / "s0_flair_lime.nii.gz").exists()
    assert json.loads((out / "reports.jsonl").read_text().splitlines()[0])["explanation"] == e


def test_usage_errors(capsys):
    assert main(["explain", "--out", "x"]) == 2
    assert "give scans to explain, or --manifest" in capsys.readouterr().err
    assert main(["explain", "a.nii", "--out", "x", "--split", "test"]) == 2
    assert "give --manifest too" in capsys.readouterr().err
