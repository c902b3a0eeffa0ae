"""A two-sequence checkpoint through the service (files in the model's order, grids resampled), and the command."""

from __future__ import annotations

import numpy as np
import pytest

from brain3d.cli import main
from brain3d.serve.app import create_app
from tests.serve.conftest import nifti_bytes, serve_config, started
from tests.train.conftest import blob_volume


@pytest.fixture(scope="module")
def two_sequence_client(tiny_models, tmp_path_factory):
    """An untrained flair+t1ce model saved as a checkpoint (nothing is trained: only the input contract matters)."""
    from fastapi.testclient import TestClient

    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    root = tmp_path_factory.mktemp("serve2")
    ckpt = Brain3D.build(tiny_config(tiny_models, sequences=["flair", "t1ce"])).save_pretrained(root / "ckpt")
    app = create_app(serve_config(ckpt, root, phantoms=None))
    with TestClient(app) as client:
        yield started(client), app


def test_several_sequence_files(two_sequence_client):
    client, app = two_sequence_client
    assert client.get("/v1/model").json()["sequences"] == ["flair", "t1ce"]
    flair = np.transpose(blob_volume("left", 5), (2, 1, 0))
    t1ce = flair[::2, ::2, ::2]  # another grid (2 mm): resampled onto the first sequence's
    files = [("files", ("flair.nii.gz", nifti_bytes(flair))), ("files", ("t1ce.nii.gz", nifti_bytes(t1ce, np.diag([2, 2, 2, 1]))))]
    r = client.post("/v1/reports", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["input"] == ["flair.nii.gz", "t1ce.nii.gz"] and r.json()["id"] == "flair"
    one = client.post("/v1/reports", files={"files": ("flair.nii.gz", nifti_bytes(flair))})
    assert one.status_code == 400 and "needs 2 (flair, t1ce)" in one.json()["error"]
    bad = [files[0], ("files", ("t1ce.nii.gz", b"not a scan"))]
    r = client.post("/v1/reports", files=bad)
    assert r.status_code == 415 and r.json()["error"].startswith("t1ce.nii.gz: is not a volume")
    assert client.get("/v1/phantoms").json() == []
    import os

    assert os.listdir(app.state.service.tmp_root) == []


def test_serve_command_help_and_missing_checkpoint(capsys, tmp_path, monkeypatch):
    code = main(["serve", "--help"])
    out = capsys.readouterr().out
    assert code == 0 and "--max-upload-mb" in out and "127.0.0.1" in out
    monkeypatch.chdir(tmp_path)  # no demo checkpoint here
    assert main(["serve"]) == 2
    assert "no --checkpoint given and no demo checkpoint found" in capsys.readouterr().err


def test_serve_command_refuses_a_folder_that_is_no_checkpoint_before_listening(capsys, tmp_path):
    assert main(["serve", "--checkpoint", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{tmp_path}: is not a brain3d checkpoint (no config.json)")
    assert main(["serve", "--checkpoint", str(tmp_path), "--batch", "0"]) == 2
    assert "--batch" in capsys.readouterr().err


def test_a_model_that_fails_to_load_is_reported_by_the_probes(tmp_path):
    import time

    from fastapi.testclient import TestClient

    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    with TestClient(create_app(serve_config(broken, tmp_path, phantoms=None))) as client:
        deadline = time.monotonic() + 30
        while (ready := client.get("/readyz").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready["status"] == "error" and ready["error"]
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/health").json()["status"] == "error"
        r = client.post("/v1/reports", files={"files": ("a.nii", b"x")})
        assert r.status_code == 503 and r.json()["error"] == ready["error"] and r.headers["retry-after"]
