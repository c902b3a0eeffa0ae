"""A checkpoint's preprocessing (its training config's intensity scaling, here the median one) travels into
`report`, `evaluate` and `explain`: the volume the model is handed is the scan scaled as the checkpoint says, not
with the percentile default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brain3d.cli import main
from brain3d.data.manifest import Record, Truth, write_manifest
from brain3d.model.brain3d import Brain3D
from brain3d.preprocess import PreprocessConfig, load_for_model
from tests.volumes import oblique_grid, reoriented, save_nifti
from tests.train.conftest import blob_volume

SIZE = (16, 32, 32)  # the tiny checkpoint's grid


@pytest.fixture
def handed(monkeypatch) -> list[torch.Tensor]:
    """Every volume (C, D, H, W) any Brain3D is handed to encode, in order."""
    seen: list[torch.Tensor] = []
    original = Brain3D.encode_volume

    def encode_volume(self, volumes):
        seen.extend(v.detach().cpu().clone() for v in volumes)
        return original(self, volumes)

    monkeypatch.setattr(Brain3D, "encode_volume", encode_volume)
    return seen


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """An oblique scan (35 and 40 degrees off the patient's axes) whose field of view is mostly head (so the median
    is brain, not background) and whose median and percentile scalings differ."""
    return save_nifti(*reoriented(*oblique_grid(shape=(24, 26, 22), spacing=(5.0, 5.0, 5.0)), "LIP"),
                      tmp_path_factory.mktemp("scan") / "obl.nii.gz")


def _assert_median_scaled(volume: torch.Tensor, path) -> None:
    median = load_for_model(path, PreprocessConfig(size=SIZE, scaling="median")).tensor
    percentile = load_for_model(path, PreprocessConfig(size=SIZE)).tensor
    assert (median - percentile).abs().max() > 0.1  # the two scalings are told apart on this scan
    assert 0.4 < float(median.median()) < 0.6  # and the median one is not degenerate (anchored on tissue)
    torch.testing.assert_close(volume, median)


def test_report_preprocesses_as_the_checkpoint_says(median_checkpoint, scan, handed, capsys):
    assert main(["report", str(scan), "-c", str(median_checkpoint), "--json", "--max-new-tokens", "4",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    _assert_median_scaled(handed[0], scan)


def test_evaluate_preprocesses_as_the_checkpoint_says(median_checkpoint, scan, handed, tmp_path):
    manifest = write_manifest([Record(id="s0", split="test", images={"flair": str(scan)}, truth=Truth(side="left"),
                                      report="A lesion in the left frontal lobe.")], tmp_path / "m.jsonl")
    assert main(["evaluate", "-c", str(median_checkpoint), "-m", str(manifest), "--out", str(tmp_path / "ev"),
                 "--max-new-tokens", "4", "--device", "cpu", "--no-meteor", "--no-bertscore", "--n-boot", "50"]) == 0
    _assert_median_scaled(handed[0], scan)


def test_explain_preprocesses_as_the_checkpoint_says(median_checkpoint, scan, handed, tmp_path, capsys):
    main(["explain", str(scan), "-c", str(median_checkpoint), "--out", str(tmp_path / "ex"), "--samples", "4",
          "--segments", "4", "--batch", "4", "--no-png", "--max-new-tokens", "4", "--device", "cpu", "--no-progress"])
    capsys.readouterr()
    assert handed, "explain never ran the model"
    _assert_median_scaled(handed[0], scan)  # the report it explains is generated from the median-scaled scan


def test_a_training_fixture_scan_is_read_the_same_way(median_checkpoint, tmp_path, handed, capsys):
    """The blob phantoms of the other command tests: noise at 0.3 becomes 0.5 under the median, about 0.14 under
    the percentiles."""
    from brain3d.io import write_nifti
    from tests.train.conftest import MODEL_AFFINE

    path = write_nifti(blob_volume("left", 5), MODEL_AFFINE, tmp_path / "left.nii.gz")
    assert main(["report", str(path), "-c", str(median_checkpoint), "--json", "--max-new-tokens", "4",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    x = handed[0][0].numpy()
    assert float(np.median(x)) == pytest.approx(0.5, abs=0.02)
    _assert_median_scaled(handed[0], path)
