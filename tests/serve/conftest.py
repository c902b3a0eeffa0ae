"""One running service per test module on the session's trained checkpoint, and upload bodies of every kind."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brain3d.serve.app import create_app
from brain3d.serve.config import ServeConfig
from tests.train.conftest import blob_volume, make_manifest
from tests.volumes import write_dicom_series

UPLOAD_MB = 2


def serve_config(checkpoint: Path, root: Path, **changes) -> ServeConfig:
    """Small, fast settings: short reports, a 2 MB upload cap, phantoms from a tiny manifest."""
    settings = dict(checkpoint=checkpoint, device="cpu", max_new_tokens=8, max_upload_mb=UPLOAD_MB, batch=4, explain_samples=6,
                    queue_size=6, max_wait_ms=10, phantoms=make_manifest(root / "phantoms", 2, 0, 2),
                    tmp_root=root / "tmp")
    settings.update(changes)
    return ServeConfig(**settings)


def started(client, timeout: float = 60.0):
    """Wait until /readyz says the model is loaded."""
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.05)
    return client


def running_app(checkpoint: Path, root: Path):
    """A started service on `checkpoint` (its client in `app.state.client`), for a module fixture to yield from."""
    from fastapi.testclient import TestClient

    application = create_app(serve_config(checkpoint, root))
    with TestClient(application) as client:
        started(client)
        application.state.client = client
        yield application
    assert not application.state.service.tmp_root.exists()  # the private folder goes with the service


@pytest.fixture(scope="module")
def app(trained_checkpoint, tmp_path_factory):
    yield from running_app(trained_checkpoint, tmp_path_factory.mktemp("serve"))


@pytest.fixture
def client(app):
    """The module's client; after each test the private upload folder must be empty again."""
    yield app.state.client
    assert os.listdir(app.state.service.tmp_root) == []


def nifti_bytes(data: np.ndarray, affine: np.ndarray | None = None, gz: bool = True) -> bytes:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4) if affine is None else affine)
    raw = img.to_bytes()
    if gz:
        import gzip

        raw = gzip.compress(raw)
    return raw


def blob_nifti(side: str | None = "left", seed: int = 5) -> bytes:
    """A training-style volume (model axes (D, H, W)) stored RAS with a unit affine."""
    return nifti_bytes(np.transpose(blob_volume(side, seed), (2, 1, 0)))


def dicom_zip(tmp: Path, uids: tuple[str, ...] = ("1.2.826.0.1.5",)) -> bytes:
    """A zip of one DICOM series per UID, each written in its own sub-folder, as a PACS export would be."""
    ras = np.transpose(blob_volume("left", 5), (2, 1, 0))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for uid in uids:
            folder = write_dicom_series(np.round(ras * 1000).astype(np.int16), np.eye(4), tmp / uid, uid)
            for f in sorted(folder.iterdir()):
                zf.write(f, f"export/{uid}/{f.name}")
    return buf.getvalue()
