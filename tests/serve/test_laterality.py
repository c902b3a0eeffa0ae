"""The service on a checkpoint that scales intensities by the median (the shipped scaling), fed oblique uploads
(35 and 40 degrees off the patient's axes) whose blob sits on the patient's left or right in world coordinates:
the checkpoint's scaling reaches the model, the mirror check of a side-reading model flips the side, and an
overlay lands on the scan's own grid at the world position it was computed for."""

from __future__ import annotations

import gzip
import io
import zipfile

import nibabel as nib
import numpy as np
import pytest
import torch

import brain3d.explain as explain_package
import brain3d.serve.service as service_module
from brain3d.model.brain3d import Brain3D
from brain3d.preprocess import PreprocessConfig, load_for_model
from tests.planted import LEFT_REPORT, SideReader
from tests.serve.conftest import running_app
from tests.volumes import BLOB_RIGHT, BLOB_WORLD, oblique_grid, reoriented, write_dicom_series

SHAPE, SPACING = (24, 26, 22), (5.0, 5.0, 5.0)  # a field of view mostly inside the head: the median is brain


@pytest.fixture(scope="module")
def app(median_checkpoint, tmp_path_factory):
    yield from running_app(median_checkpoint, tmp_path_factory.mktemp("serve-median"))


@pytest.fixture(scope="module")
def uploads(tmp_path_factory) -> dict[str, tuple[str, bytes, np.ndarray]]:
    """name -> (file name, bytes, the file's own voxel->world affine): an oblique NIfTI stored LIP with the blob on
    the left, and a zipped oblique DICOM series (stored PRI) with the blob on the right."""
    root = tmp_path_factory.mktemp("uploads")
    left, left_affine = reoriented(*oblique_grid(shape=SHAPE, spacing=SPACING), "LIP")
    img = nib.Nifti1Image(left, left_affine)
    right, right_affine = reoriented(*oblique_grid(shape=SHAPE, spacing=SPACING, blob=BLOB_RIGHT), "PRI")
    folder = write_dicom_series(np.round(right).astype(np.int16), right_affine, root / "dcm", "1.2.826.0.1.3680043.8.498.71")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"series/{f.name}")
    return {"left": ("left_obl.nii.gz", gzip.compress(img.to_bytes()), left_affine),
            "right": ("right_obl.zip", buf.getvalue(), right_affine)}


def post(client, upload, **params):
    name, raw, _ = upload
    return client.post("/v1/reports", params=params, files={"files": (name, raw)})


def test_the_checkpoints_scaling_reaches_the_model(app, uploads, monkeypatch, tmp_path):
    handed: list[torch.Tensor] = []
    original = Brain3D.encode_volume

    def encode_volume(self, volumes):
        handed.extend(v.detach().cpu().clone() for v in volumes)
        return original(self, volumes)

    monkeypatch.setattr(Brain3D, "encode_volume", encode_volume)
    client = app.state.client
    assert client.get("/v1/model").json()["preprocess"]["scaling"] == "median"
    r = post(client, uploads["left"])
    assert r.status_code == 200, r.text
    path = tmp_path / uploads["left"][0]
    path.write_bytes(uploads["left"][1])
    median = load_for_model(path, PreprocessConfig(size=(16, 32, 32), scaling="median")).tensor
    assert (median - load_for_model(path, PreprocessConfig(size=(16, 32, 32))).tensor).abs().max() > 0.1
    torch.testing.assert_close(handed[0], median)


@pytest.mark.parametrize("side, other", [("left", "right"), ("right", "left")])
def test_mirror_check_of_a_side_reading_model_flips_the_world_side(app, uploads, monkeypatch, side, other):
    original = service_module.generate_records
    monkeypatch.setattr(service_module, "generate_records",
                        lambda model, *a, **k: original(SideReader(), *a, **k))  # the service's own loading
    rec = post(app.state.client, uploads[side], mirror_check="true").json()
    assert rec["error"] is None
    assert (rec["findings"]["side"], rec["mirrored_side"], rec["laterality_consistent"]) == (side, other, True)


def test_an_overlay_lands_on_the_scans_own_grid_at_its_world_position(app, uploads, monkeypatch):
    """The explanation's model-grid map is replaced by the blob itself (the model tensor's brightest voxels, found
    by intensity, not by any affine); the overlay the page gets must light the blob's world position, read through
    the overlay file's own affine, on voxel centres of the uploaded scan's own grid."""
    original_records, original_explain = service_module.generate_records, explain_package.explain_scan

    def records(*a, **k):
        for rec in original_records(*a, **k):
            rec.report = LEFT_REPORT
            yield rec

    def explain_scan(model, scan, cfg, out=None, report=None):
        from brain3d.eval.evaluate import preprocess_for

        exp = original_explain(model, scan, cfg, out, report)
        x = load_for_model(scan.paths, preprocess_for(model)).tensor[0].numpy()  # (D, H, W)
        exp.map_model = (x >= 0.9 * x.max()).astype(np.float32)
        return exp

    monkeypatch.setattr(service_module, "generate_records", records)
    monkeypatch.setattr(explain_package, "explain_scan", explain_scan)
    client = app.state.client
    r = post(client, uploads["left"], explain="side", view="true")
    assert r.status_code == 200, r.text
    assert r.json()["explanation"]["error"] is None
    overlay = client.get(f"{r.headers['brain3d-view']}/overlay.nii.gz")
    assert overlay.status_code == 200
    img = nib.Nifti1Image.from_bytes(gzip.decompress(overlay.content))
    data = np.asarray(img.dataobj)
    # the overlay's voxels are the upload's voxels (same centres in the world, permuted)
    idx = np.indices(data.shape).reshape(3, -1).T.astype(np.float64)
    world = idx @ img.affine[:3, :3].T + img.affine[:3, 3]
    inv = np.linalg.inv(uploads["left"][2])
    in_upload = world @ inv[:3, :3].T + inv[:3, 3]
    assert np.abs(in_upload - np.rint(in_upload)).max() < 1e-3
    assert data.size == np.prod(SHAPE)
    # lit where the blob is, in world mm
    lit = world[data.reshape(-1) > 0.5]
    assert len(lit) > 0
    assert np.linalg.norm(lit.mean(axis=0) - np.array(BLOB_WORLD)) < 4.0
    assert np.linalg.norm(lit - np.array(BLOB_WORLD), axis=1).max() < 20.0
    # the oracle tells a mirrored overlay apart: its lit voxels sit on the patient's right
    mirrored = world[data[::-1].reshape(-1) > 0.5]  # the RAS overlay reversed along x
    assert mirrored.mean(axis=0)[0] > 0
