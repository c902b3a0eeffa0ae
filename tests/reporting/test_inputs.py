from pathlib import Path

import numpy as np
import pytest

from brain3d.errors import VolumeError
from brain3d.reporting.inputs import discover
from tests.volumes import save_nifti, write_dicom_series


def _vol(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_nifti(np.random.rand(6, 6, 6).astype(np.float32), np.eye(4), path)


def test_brats_folder_groups_sequences_and_skips_masks(tmp_path):
    for sid in ("BraTS20_Training_001", "BraTS20_Training_002"):
        for seq in ("flair", "t1", "t1ce", "t2", "seg"):
            _vol(tmp_path / sid / f"{sid}_{seq}.nii.gz")
    flair = discover([tmp_path], ("flair",))
    assert [s.id for s in flair] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    assert all(s.paths[0].endswith("_flair.nii.gz") for s in flair)
    multi = discover([tmp_path], ("flair", "t1ce"))
    assert [Path(p).name for p in multi[0].paths] == ["BraTS20_Training_001_flair.nii.gz",
                                                      "BraTS20_Training_001_t1ce.nii.gz"]


def test_loose_files_dicom_folders_and_unique_ids(tmp_path):
    _vol(tmp_path / "a" / "scan.nii.gz")
    _vol(tmp_path / "b" / "scan.nii")
    write_dicom_series(np.ones((4, 4, 3), np.int16), np.eye(4), tmp_path / "pacs" / "series1", "1.2.3.4")
    scans = discover([tmp_path], ("flair",))
    assert sorted(s.id for s in scans) == ["scan", "scan-2", "series1"]
    assert discover([tmp_path / "pacs" / "series1"], ("flair",))[0].paths == [str(tmp_path / "pacs" / "series1")]


def test_comma_joined_sequences_and_count_checks(tmp_path):
    a, b = _vol(tmp_path / "f.nii.gz"), _vol(tmp_path / "t.nii.gz")
    assert discover([f"{a},{b}"], ("flair", "t1"))[0].paths == [str(a), str(b)]
    with pytest.raises(VolumeError, match="names 2 files but the checkpoint needs 1 sequences"):
        discover([f"{a},{b}"], ("flair",))
    with pytest.raises(VolumeError, match="is one file but the checkpoint needs 2 sequences"):
        discover([a], ("flair", "t1"))


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="folder without any scan"):
        discover([tmp_path / "empty"], ("flair",))
