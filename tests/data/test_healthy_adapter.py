"""`brain3d data healthy`: a ds000221-like BIDS tree of raw heads → skull-stripped scans, templates, manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brain3d.data.manifest import read_manifest
from brain3d.io import read_volume
from brain3d.synth.skull import dice
from tests.data.realdata import bids_tree
from tests.data.test_brats_adapter import run_cli


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    base = tmp_path_factory.mktemp("bids")
    root = base / "ds000221"
    truth = bids_tree(root, n=2)
    out = base / "manifests" / "healthy.jsonl"
    rc, stdout, stderr = run_cli(["data", "healthy", str(root), "--out", str(out), "--quiet"])
    assert rc == 0, stderr
    return root, truth, out, {r.id: r for r in read_manifest(out)}


def test_one_scan_per_subject_first_session(healthy):
    root, truth, out, recs = healthy
    assert sorted(recs) == ["sub-010001", "sub-010002"]
    rec = recs["sub-010001"]
    assert rec.healthy and rec.source == "healthy" and rec.mask is None and rec.truth is None
    assert rec.images["flair"].endswith("sub-010001/sub-010001_ses-01_acq-lowres_desc-brain_FLAIR.nii.gz")
    scans = out.parent / "healthy_brain"
    assert json.loads((scans / "healthy.json").read_text())["subjects"] == ["sub-010001", "sub-010002"]


def test_skull_stripping_dice_on_planted_skull(healthy):
    """The written brain mask against the phantom's true brain: Dice >= 0.9 (measured ~0.98)."""
    root, truth, _, recs = healthy
    for sid, rec in recs.items():
        mask_path = rec.images["flair"].replace("_desc-brain_FLAIR", "_desc-brain_mask")
        mask = read_volume(mask_path).data > 0.5
        true = read_volume(truth[sid]).data > 0.5
        assert dice(mask, true) >= 0.9, sid
        brain = read_volume(rec.images["flair"]).data
        assert not brain[~mask].any() and brain[mask].any()  # zero outside the brain only


def test_stripped_scan_keeps_the_true_affine(healthy):
    root, _, _, recs = healthy
    raw = read_volume(next((root / "sub-010002" / "ses-01" / "anat").glob("*_FLAIR.nii")))
    stripped = read_volume(recs["sub-010002"].images["flair"])
    assert stripped.shape == raw.shape
    np.testing.assert_allclose(stripped.affine, raw.affine, atol=1e-4)
    assert not np.allclose(stripped.affine, np.eye(4))


def test_reports_are_normal_templates_and_stable(healthy):
    from brain3d import vocabulary

    _, _, _, recs = healthy
    for sid, rec in recs.items():
        assert rec.report == vocabulary.normal_report(sid)
        assert not vocabulary.asserts_pathology(rec.report)
        assert vocabulary.side_of(rec.report) is None


def test_tree_without_flair(tmp_path):
    root = tmp_path / "ds"
    anat = root / "sub-01" / "ses-01" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-01_ses-01_T1w.nii.gz").write_bytes(b"")
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "healthy", str(root), "--out", str(out), "--quiet"])
    assert rc == 2 and "has no anat/*_FLAIR.nii[.gz] scan in any of its 1 subjects" in err
    assert not out.exists() and not (tmp_path / "m_brain").exists()


def test_not_a_bids_tree(tmp_path):
    (tmp_path / "ds").mkdir()
    rc, _, err = run_cli(["data", "healthy", str(tmp_path / "ds"), "--out", str(tmp_path / "m.jsonl"), "--quiet"])
    assert rc == 2 and "is not a BIDS tree" in err


def test_unreadable_scan_leaves_nothing_behind(tmp_path):
    root = tmp_path / "ds"
    anat = root / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-01_FLAIR.nii.gz").write_bytes(b"\x1f\x8b not a nifti")
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "healthy", str(root), "--out", str(out), "--quiet"])
    assert rc == 2 and "sub-01_FLAIR.nii.gz" in err
    assert not out.exists() and not (tmp_path / "m_brain").exists()


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    from brain3d.data import skullstrip
    from brain3d.errors import Brain3DError

    for name in skullstrip.WEIGHTS:
        (tmp_path / name).write_bytes(b"not the shipped network")
    monkeypatch.setattr(skullstrip, "weights_dir", lambda: tmp_path)
    skullstrip.load_networks.cache_clear()
    try:
        with pytest.raises(Brain3DError, match="SHA-256 differs"):
            skullstrip.load_networks("cpu")
    finally:
        skullstrip.load_networks.cache_clear()
