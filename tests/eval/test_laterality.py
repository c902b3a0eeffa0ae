"""`evaluate --mirror` with a model known to read the side from its image (`tests.planted`): on oblique scans
(35 and 40 degrees in two planes) with the blob placed on the patient's left or right in world coordinates, every
generated side is the true side, every mirrored report names the other, and the mirror test says so; a model
that writes a template scores a flip rate of zero."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brain3d.data.manifest import Record, Truth, write_manifest
from brain3d.eval.evaluate import PREDICTIONS, EvaluateOptions, evaluate_checkpoint
from brain3d.eval.nlg import NLGOptions
from brain3d.eval.scoring import ScoreOptions
from brain3d.vocabulary import side_of
from tests.planted import ImageBlind, SideReader
from tests.volumes import BLOB_RIGHT, BLOB_WORLD, oblique_grid, reoriented, save_nifti, write_dicom_series

EXTRA = {"train_config": {"data": {"high": 100.0}}}  # only the blob's peak saturates
OTHER = {"left": "right", "right": "left"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("lat-eval")
    records = []
    for i, (side, blob, codes) in enumerate([("left", BLOB_WORLD, "LIP"), ("right", BLOB_RIGHT, "PRI"),
                                             ("right", BLOB_RIGHT, "SLA"), ("left", BLOB_WORLD, "dicom")]):
        data, affine = oblique_grid(shape=(30, 32, 26), spacing=(6.0, 6.0, 7.0), blob=blob)
        if codes == "dicom":
            stored, stored_affine = reoriented(np.round(data).astype(np.int16), affine, "LPS")
            path = write_dicom_series(stored, stored_affine, root / f"s{i}", f"1.2.826.0.1.3680043.8.498.6{i}")
        else:
            path = save_nifti(*reoriented(data, affine, codes), root / f"s{i}.nii.gz")
        records.append(Record(id=f"s{i}", split="test", images={"flair": str(path)}, truth=Truth(side=side),
                              report=f"A lesion in the {side} frontal lobe."))
    return write_manifest(records, root / "manifest.jsonl")


def _opts() -> EvaluateOptions:
    return EvaluateOptions(split="test", mirror=True, max_new_tokens=8, batch_size=3, device="cpu", progress=False,
                           score=ScoreOptions(nlg=NLGOptions(meteor=False, bertscore=False), n_boot=50))


def test_evaluate_mirror_reports_the_true_side_and_its_mirror(manifest, tmp_path):
    metrics = evaluate_checkpoint("planted", manifest, tmp_path, _opts(), model=SideReader(extra=EXTRA))
    rows = [json.loads(x) for x in (tmp_path / PREDICTIONS).read_text(encoding="utf-8").splitlines()]
    assert [side_of(r["generated"]) for r in rows] == [r["truth"]["side"] for r in rows]
    assert [side_of(r["generated_mirror"]) for r in rows] == [OTHER[r["truth"]["side"]] for r in rows]
    mirror = metrics["diagnostics"]["mirror"]
    assert mirror["n_lateralised"] == 4 and mirror["flip_rate"] == 1.0 and mirror["same_side_rate"] == 0.0


def test_evaluate_mirror_gives_a_template_writer_no_flips(manifest, tmp_path):
    metrics = evaluate_checkpoint("planted", manifest, tmp_path, _opts(), model=ImageBlind(extra=EXTRA))
    mirror = metrics["diagnostics"]["mirror"]
    assert mirror["flip_rate"] == 0.0 and mirror["same_side_rate"] == 1.0
