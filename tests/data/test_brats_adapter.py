"""`brain3d data brats`: the real layout, reports, truth measured on the masks of phantoms with known truth."""

from __future__ import annotations

import contextlib
import io
import numpy as np
import pytest

from brain3d.cli import main
from brain3d.data.manifest import read_manifest
from tests.data.realdata import brats_tree, phantom, write_brats_subject


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def brats(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    specs = brats_tree(root)
    out = root / "manifests" / "brats.jsonl"
    rc, stdout, stderr = run_cli(["data", "brats", str(root), "--out", str(out), "--quiet"])
    assert rc == 0, stderr
    return root, specs, {r.id: r for r in read_manifest(out)}, stdout


def test_finds_every_layout_and_attaches_reports(brats):
    root, specs, recs, stdout = brats
    assert sorted(recs) == sorted(specs)
    assert recs["BraTS20_Training_002"].images["flair"].endswith("_flair.nii")  # plain .nii
    assert "/flat/" in recs["BraTS20_Training_003"].images["flair"]  # files flat in one folder
    assert all(r.source == "brats" and not r.healthy for r in recs.values())
    assert recs["BraTS20_Training_001"].report.startswith("The lesion is located in the left frontal lobe")
    assert not recs["BraTS20_Training_001"].report.endswith("\n")
    assert recs["BraTS20_Training_004"].report == ""  # no TextBraTS file
    assert "4 of 5 subjects have a TextBraTS report; 1 have none" in stdout
    assert recs["BraTS20_Training_005"].mask is None and recs["BraTS20_Training_005"].truth is None
    assert "1 subject(s) have no seg file" in stdout


def test_truth_from_masks_matches_the_phantoms(brats):
    _, specs, recs, _ = brats
    known = {k: s for k, s in specs.items() if s is not None}
    assert len({s.orientation for s in known.values()}) >= 3  # stored in several orientations
    jaccard = []
    for sid, spec in known.items():
        truth = recs[sid].truth
        assert truth.side == spec.truth.side, sid
        ours, true = set(truth.lobes), set(spec.truth.lobes)
        assert ours and ours <= true, (sid, ours, true)  # every lobe named is right
        jaccard.append(len(ours & true) / len(ours | true))
        assert truth.volumes_ml["whole"] == pytest.approx(spec.extras["volume_mm3"] / 1000.0, rel=0.15)
        assert truth.volumes_ml["whole"] == pytest.approx(
            truth.volumes_ml["necrosis"] + truth.volumes_ml["edema"] + truth.volumes_ml["enhancing"], abs=0.01)
        assert truth.findings["edema"] is (truth.volumes_ml["edema"] > 0.04)
        assert "necrosis" not in truth.findings  # label 1 cannot tell necrosis from solid tumour
    assert np.mean(jaccard) >= 0.6


def test_volumes_count_the_labels_exactly(brats):
    _, specs, recs, _ = brats
    spec, r = phantom(1, "right")
    voxel_ml = float(np.prod(spec.spacing)) / 1000.0
    vols = recs["BraTS20_Training_002"].truth.volumes_ml
    assert vols["edema"] == pytest.approx((r.labels == 2).sum() * voxel_ml, abs=1e-3)
    assert vols["enhancing"] == pytest.approx((r.labels == 4).sum() * voxel_ml, abs=1e-3)


def test_side_follows_the_header_not_the_array(tmp_path):
    """The same voxels under a header mirrored in x describe the other hemisphere: the side must flip."""
    from brain3d.data.truth import lesion_labels, midsagittal_plane, side_of
    from brain3d.io import read_volume
    from tests.data.realdata import write_nii

    spec, r = phantom(0, "left")
    flipped = r.affine.copy()
    flipped[0, :] *= -1  # world x negated: left and right exchanged
    sides = []
    for name, aff in (("true", r.affine), ("mirrored", flipped)):
        img = read_volume(write_nii(r.images["flair"], aff, tmp_path / f"{name}.nii.gz"))
        les = lesion_labels(read_volume(write_nii(r.labels, aff, tmp_path / f"{name}_seg.nii.gz"))) > 0
        sides.append(side_of(les, img, midsagittal_plane(img, les))[0])
    assert sides == ["left", "right"]


def test_midsagittal_plane_is_estimated_not_assumed(tmp_path):
    """A tilted, shifted head: the plane found matches the phantom's true MNI x = 0 plane in world space."""
    from brain3d.data.truth import midsagittal_plane
    from brain3d.io import read_volume
    from tests.data.realdata import write_nii

    spec, r = phantom(3, "right")
    img = read_volume(write_nii(r.images["flair"], r.affine, tmp_path / "f.nii.gz"))
    les = read_volume(write_nii(r.labels, r.affine, tmp_path / "s.nii.gz")).data > 0
    plane = midsagittal_plane(img, les)
    pose = spec.pose()
    normal = np.linalg.inv(pose[:3, :3]).T @ np.array([1.0, 0.0, 0.0])
    normal /= np.linalg.norm(normal)
    offset = float(normal @ pose[:3, 3])
    assert np.degrees(np.arccos(min(1.0, float(normal @ plane.normal)))) < 3.0
    assert abs(plane.offset - offset) < 2.0
    assert plane.symmetry > 0.8


def test_manifest_feeds_training_unchanged(brats, tmp_path):
    """Merged with healthy records and split, the manifest loads through the training data path."""
    from brain3d.data.dataset import ReportDataset, VolumeSource
    from brain3d.data.manifest import Record, write_manifest
    from brain3d.preprocess import PreprocessConfig
    from tests.data.realdata import write_nii

    root, _, recs, _ = brats
    healthy = []
    for i in range(3):
        _, r = phantom(30 + i, None)
        path = write_nii(r.images["flair"], r.affine, tmp_path / f"h{i}.nii.gz")
        healthy.append(Record(id=f"sub-{i}", images={"flair": str(path)}, report="Normal brain MRI.", healthy=True,
                              source="healthy"))
    hman = write_manifest(healthy, tmp_path / "healthy.jsonl")
    bman = root / "manifests" / "brats.jsonl"
    out = tmp_path / "all.jsonl"
    rc, stdout, stderr = run_cli(["data", "merge", str(bman), str(hman), "--out", str(out)])
    assert rc == 0, stderr
    records = read_manifest(out)
    assert {r.split for r in records} <= {"train", "val", "test"} and len(records) == 8
    ds = ReportDataset(records, VolumeSource(PreprocessConfig(size=(8, 16, 16)), ["flair"]))
    item = ds[0]
    assert tuple(item["inputs"].shape) == (1, 8, 16, 16)


# ---------------------------------------------------------------- bad input: one sentence, nothing written


def test_folder_without_subjects(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("x")
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "brats", str(tmp_path / "data"), "--out", str(out), "--quiet"])
    assert rc == 2 and "holds no BraTS subject" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_empty_report_is_refused(tmp_path):
    write_brats_subject(tmp_path / "d" / "BraTS20_Training_010", "BraTS20_Training_010", 5, "left", seg=False,
                        report="  \n")
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "brats", str(tmp_path / "d"), "--out", str(out), "--quiet"])
    assert rc == 2 and "is an empty report" in err and "BraTS20_Training_010_flair_text.txt" in err
    assert not out.exists()


def test_duplicate_subject_is_refused(tmp_path):
    for folder in ("a", "b"):
        write_brats_subject(tmp_path / "d" / folder / "BraTS20_Training_011", "BraTS20_Training_011", 6, "right",
                            seg=False, report=None)
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "brats", str(tmp_path / "d"), "--out", str(out), "--quiet"])
    assert rc == 2 and "duplicate subject id BraTS20_Training_011" in err
    assert not out.exists()


def test_truncated_file_stops_or_is_skipped(tmp_path):
    d = tmp_path / "d"
    write_brats_subject(d / "BraTS20_Training_012", "BraTS20_Training_012", 7, "left", seg=False, report=None)
    write_brats_subject(d / "BraTS20_Training_013", "BraTS20_Training_013", 8, "left", seg=False, report=None)
    bad = d / "BraTS20_Training_013" / "BraTS20_Training_013_flair.nii.gz"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "brats", str(d), "--out", str(out), "--quiet"])
    assert rc == 2 and "truncated" in err and "BraTS20_Training_013_flair.nii.gz" in err
    assert not out.exists()
    rc, _, err = run_cli(["data", "brats", str(d), "--out", str(out), "--quiet", "--skip-bad"])
    assert rc == 0 and "left out BraTS20_Training_013" in err
    assert [r.id for r in read_manifest(out)] == ["BraTS20_Training_012"]


def test_missing_sequence_names_the_subject(tmp_path):
    d = tmp_path / "d" / "BraTS20_Training_014"
    write_brats_subject(d, "BraTS20_Training_014", 9, "left", seg=False, report=None)
    (d / "BraTS20_Training_014_t2.nii.gz").unlink()
    out = tmp_path / "m.jsonl"
    rc, _, err = run_cli(["data", "brats", str(tmp_path / "d"), "--out", str(out), "--sequences", "flair,t2",
                          "--quiet"])
    assert rc == 2 and "subject BraTS20_Training_014 has no t2 file" in err
    assert not out.exists()
