"""`brain3d data audit`: a planted shortcut is flagged by name; a cohort without one passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brain3d.data.audit import auroc, run_audit
from brain3d.data.manifest import Record, write_manifest
from brain3d.errors import ManifestError
from brain3d.preprocess import PreprocessConfig
from tests.data.realdata import phantom, write_nii
from tests.data.test_brats_adapter import run_cli

N = 12  # per class
SIZE = (16, 32, 32)
SIDES = ("left", "right", "bilateral")


def cohort(folder, plant: str | None = None) -> list[Record]:
    """N healthy + N pathological coarse phantoms; `plant` gives the healthy ones a background or spacing of their own."""
    recs = []
    for i in range(2 * N):
        side = None if i % 2 == 0 else SIDES[(i // 2) % 3]
        voxel = 6.0 if plant == "spacing" and side is None else 5.0
        spec, r = phantom(100 + i, side, voxel)
        img = r.images["flair"].astype(np.float32)
        if plant == "background" and side is None:
            img = np.where(img == 0, 40.0, img)
        path = write_nii(img, r.affine, folder / f"s{i}_flair.nii.gz")
        mask = write_nii(r.labels, r.affine, folder / f"s{i}_seg.nii.gz") if side else None
        recs.append(Record(id=f"s{i:02d}", images={"flair": str(path)}, mask=str(mask) if mask else None,
                           healthy=side is None, truth=spec.truth, source="healthy" if side is None else "brats"))
    return recs


def test_cohort_without_shortcut_passes(tmp_path):
    result = run_audit(cohort(tmp_path), PreprocessConfig(size=SIZE))
    assert result["auroc"] <= 0.7 and result["warning"] is None
    lo, hi = result["ci95"]
    assert lo <= result["auroc"] <= hi
    assert set(result["sources"]) == {"brats", "healthy"}


def test_planted_background_is_flagged_by_name(tmp_path):
    result = run_audit(cohort(tmp_path, "background"), PreprocessConfig(size=SIZE))
    assert result["auroc"] > 0.9
    assert result["warning"] is not None and "strongest feature: background_level (AUROC 1.00 alone)" in result["warning"]


def test_planted_spacing_is_flagged_as_a_header_shortcut(tmp_path):
    """Healthy scans on a coarser grid (the spacing profiles still overlap): flagged, by a header field."""
    result = run_audit(cohort(tmp_path, "spacing"), PreprocessConfig(size=SIZE))
    assert result["auroc"] > 0.7 and result["warning"] is not None
    assert result["by_group"]["header"]["auroc"] > 0.9
    top = result["strongest"][0]
    assert top["group"] == "header" and top["feature"].startswith(("voxels", "spacing", "fov"))
    assert f"strongest feature: {top['feature']}" in result["warning"]


def test_cli_writes_json_markdown_and_warns(tmp_path):
    recs = cohort(tmp_path, "background")
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    rc, stdout, err = run_cli(["data", "audit", str(manifest), "--config", "tiny", "--quiet"])
    assert rc == 0, err
    assert "warning: healthy and pathological scans can be told apart" in err
    out = tmp_path / "m_audit"
    result = json.loads((out / "audit.json").read_text())
    assert result["preprocess"]["size"] == [32, 64, 64] and result["preprocess"]["nonzero"] is True
    md = (out / "audit.md").read_text()
    assert "## Source: healthy" in md and "## Source: brats" in md and "| stored orientation |" in md


def test_too_few_subjects(tmp_path):
    recs = cohort(tmp_path)[:6]
    with pytest.raises(ManifestError, match="at least 5 healthy and 5 pathological"):
        run_audit(recs, PreprocessConfig(size=SIZE))


def test_auroc_matches_the_definition():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    pairs = [(a, b) for a in s[y == 1] for b in s[y == 0]]
    expected = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert auroc(y, s) == pytest.approx(expected)
