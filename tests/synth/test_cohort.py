"""The cohort on disk: every truth agrees with its mask in world and model space, with its report, and the
same seed gives the same bytes whatever the number of workers."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brain3d.cli import main
from brain3d.data.manifest import read_manifest
from brain3d.errors import Brain3DError
from brain3d.vocabulary import FINDINGS, extract, side_set
from brain3d.io import read_volume
from brain3d.preprocess import PreprocessConfig, load_for_model, resize
from brain3d.synth.cohort import make_cohort

from .conftest import COHORT_ARGS
from .test_reports import expected_anatomy


def _lesion_world(mask_path: str) -> np.ndarray:
    img = nib.load(mask_path)
    idx = np.argwhere(np.asarray(img.dataobj) > 0)
    return idx @ img.affine[:3, :3].T + img.affine[:3, 3]  # (M, 3) world RAS mm


def test_manifest_lists_every_subject_with_files_split_and_truth(synth_manifest: Path) -> None:
    records = read_manifest(synth_manifest)
    assert len(records) == COHORT_ARGS["n_pathological"] + COHORT_ARGS["n_healthy"]
    assert sum(r.healthy for r in records) == COHORT_ARGS["n_healthy"]
    assert {r.split for r in records} <= {"train", "val", "test"} and all(r.split for r in records)
    for r in records:
        assert list(r.images) == list(COHORT_ARGS["sequences"])
        assert all(Path(p).is_file() for p in r.images.values())
        if r.healthy:
            assert r.truth is None and r.mask is None
        else:
            assert Path(r.mask).is_file() and r.truth.side in ("left", "right", "bilateral")
            assert set(r.truth.findings) == set(FINDINGS) and r.truth.lobes
    info = json.loads((synth_manifest.parent / "synth.json").read_text(encoding="utf-8"))
    assert info["seed"] == COHORT_ARGS["seed"] and info["sequences"] == list(COHORT_ARGS["sequences"])
    orientations = {"".join(nib.aff2axcodes(nib.load(r.images["flair"]).affine)) for r in records}
    assert len(orientations) >= 3  # a mix of storage orientations


def test_truth_side_agrees_with_the_world_centroid_of_the_mask(synth_manifest: Path) -> None:
    for r in read_manifest(synth_manifest):
        if r.healthy:
            continue
        x = _lesion_world(r.mask)[:, 0]
        assert x.size > 0
        if r.truth.side == "bilateral":
            assert min((x < 0).mean(), (x > 0).mean()) >= 0.1, r.id
        else:
            assert np.sign(x.mean()) == (-1 if r.truth.side == "left" else 1), r.id


def test_after_io_and_preprocessing_the_lesion_lies_in_the_predicted_w_half(synth_manifest: Path) -> None:
    cfg = PreprocessConfig(size=(16, 32, 32))
    for r in read_manifest(synth_manifest):
        if r.healthy:
            continue
        mv = load_for_model([r.images["flair"]], cfg)
        mask = read_volume(r.mask)  # stored on the FLAIR's grid, so one resize aligns both
        np.testing.assert_allclose(mask.affine, read_volume(r.images["flair"]).affine)
        m = resize(torch.from_numpy((mask.data > 0).astype(np.float32))[None], cfg.size)[0]  # (D, H, W)
        w = m.sum(dim=(0, 1))  # lesion mass per W column; W index 0 = patient's far left
        left, right = float(w[: cfg.size[2] // 2].sum()), float(w[cfg.size[2] // 2:].sum())
        if r.truth.side == "left":
            assert left > right, r.id
        elif r.truth.side == "right":
            assert right > left, r.id
        else:
            assert min(left, right) >= 0.1 * (left + right), r.id
        flair = mv.tensor[0]
        assert flair[m > 0.5].mean() > flair[(m < 0.5) & (flair > 0.05)].mean()  # the lesion is hyperintense


def test_a_reader_that_ignores_the_header_gets_some_sides_wrong(synth_manifest: Path) -> None:
    wrong = 0
    for r in read_manifest(synth_manifest):
        if r.healthy or r.truth.side == "bilateral":
            continue
        raw = np.asarray(nib.load(r.mask).dataobj) > 0  # assume axis 0 runs left → right, as in RAS
        i = np.argwhere(raw)[:, 0].mean()
        naive = "left" if i < raw.shape[0] / 2 else "right"
        wrong += naive != r.truth.side
    assert wrong >= 1


def test_every_report_states_its_truth(synth_manifest: Path) -> None:
    for r in read_manifest(synth_manifest):
        got = extract(r.report, "extended")
        if r.healthy:
            assert got == {"laterality": set(), "anatomy": set(), "pathology": set()}, r.report
            continue
        assert got["laterality"] == side_set(r.truth.side), r.report
        assert got["anatomy"] == expected_anatomy(r.truth), r.report
        assert got["pathology"] & set(FINDINGS) == {k for k, v in r.truth.findings.items() if v}, r.report


def test_same_seed_gives_identical_bytes_with_any_worker_count(synth_manifest: Path, tmp_path: Path) -> None:
    again = make_cohort(tmp_path / "again", workers=2, progress=False, **COHORT_ARGS)
    first, second = synth_manifest.parent, again.parent
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    other = make_cohort(tmp_path / "other", **{**COHORT_ARGS, "seed": 8, "n_pathological": 1, "n_healthy": 0},
                        progress=False)
    flair = Path("sub-0001") / "sub-0001_flair.nii.gz"
    assert (other.parent / flair).read_bytes() != (first / flair).read_bytes()


def test_refuses_to_replace_a_folder_that_is_not_a_cohort(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(Brain3DError, match="not a synthetic cohort"):
        make_cohort(tmp_path, 1, 0, progress=False, voxel_mm=6.0)
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "user data"
    with pytest.raises(Brain3DError, match="sequences"):
        make_cohort(tmp_path / "new", 1, 0, sequences=("dwi",), progress=False)


def test_cli_writes_manifest_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, png = tmp_path / "cohort", tmp_path / "preview.png"
    args = ["synth", str(out), "--n-pathological", "2", "--n-healthy", "1", "--seed", "3", "--voxel-mm", "6",
            "--workers", "1", "--quiet", "--preview", str(png)]
    assert main(args) == 0
    assert len(read_manifest(out / "manifest.jsonl")) == 3
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote 3 subjects" in capsys.readouterr().out
    assert main(["synth", str(tmp_path / "bad"), "--sequences", "flair,dwi", "--quiet"]) == 2
    assert main(args) == 0  # re-running replaces its own cohort
