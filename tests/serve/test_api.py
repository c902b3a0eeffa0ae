"""The REST service through FastAPI's test client: every endpoint, each input kind, each bad-input class."""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile

import numpy as np
import pytest

from brain3d.preprocess import load_for_model
from brain3d.reporting.inputs import ScanInput
from brain3d.reporting.runner import ReportOptions, generate_records
from brain3d.reporting.schema import ReportRecord
from tests.serve.conftest import UPLOAD_MB, blob_nifti, dicom_zip, nifti_bytes
from tests.train.conftest import blob_volume
from tests.volumes import reoriented


def post(client, files=None, data=None, **params):
    return client.post("/v1/reports", params=params, files=files, data=data)


def test_probes_health_model_and_docs(client, app):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["device"] == "cpu"
    assert health["queue"] == {"length": 0, "capacity": 6, "batch": 4}
    model = client.get("/v1/model").json()
    assert model["sequences"] == ["flair"] and model["image_size"] == [16, 32, 32]
    assert model["config"]["model"]["num_tokens"] == 8
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/reports"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and {"mirror_check", "explain", "series_uid"} <= {
        p["name"] for p in spec["paths"]["/v1/reports"]["post"]["parameters"]}
    assert "swagger" in client.get("/docs").text.lower()
    page = client.get("/")
    assert page.status_code == 200 and 'id="slice-axial"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_nifti_report_is_the_cli_report(client, app, tmp_path):
    raw = blob_nifti("left", 5)
    r = post(client, files={"files": ("patient 7.nii.gz", raw)})
    assert r.status_code == 200, r.text
    rec = ReportRecord.model_validate(r.json())  # the documented schema
    assert rec.id == "patient_7" and rec.input == ["patient 7.nii.gz"] and rec.error is None
    assert rec.orientation == "RAS" and rec.findings is not None and rec.laterality_consistent is None
    # the same scan through `brain3d report`'s generator gives the same text
    path = tmp_path / "same.nii.gz"
    path.write_bytes(raw)
    service = app.state.service
    opts = ReportOptions(checkpoint="x", batch_size=1, max_new_tokens=8)
    (cli,) = generate_records(service.model, [ScanInput("same", [str(path)], str(path))], opts, service.preprocess)
    assert rec.report == cli.report


def test_header_decides_orientation_not_the_name(client):
    ras = np.transpose(blob_volume("left", 5), (2, 1, 0))
    lps, affine = reoriented(ras, np.eye(4), "LPS")
    a = post(client, files={"files": ("a.nii.gz", nifti_bytes(ras))}).json()
    b = post(client, files={"files": ("right_side.txt", nifti_bytes(lps, affine, gz=False))}).json()  # named anyhow
    assert (a["orientation"], b["orientation"]) == ("RAS", "LPS")
    assert a["report"] == b["report"]


def test_mirror_check(client):
    rec = post(client, files={"files": ("m.nii", blob_nifti("right", 6))}, mirror_check="true").json()
    from brain3d.vocabulary import side_of

    assert rec["mirrored_report"] and rec["mirrored_side"] == side_of(rec["mirrored_report"])
    expected = {"left": "right", "right": "left", "bilateral": "bilateral", None: None}[rec["findings"]["side"]]
    assert rec["laterality_consistent"] is (rec["mirrored_side"] == expected)  # tests/serve/test_laterality.py: planted


def test_dicom_zip_and_series_choice(client, tmp_path):
    rec = post(client, files={"files": ("study.zip", dicom_zip(tmp_path / "one"))}).json()
    assert rec["error"] is None and rec["orientation"] == "RAS" and rec["input"] == ["study.zip"]
    two = dicom_zip(tmp_path / "two", ("1.2.826.0.1.5", "1.2.826.0.1.6"))
    r = post(client, files={"files": ("two.zip", two)})
    assert r.status_code == 422
    assert r.json()["error"].startswith("two.zip: holds 2 DICOM series; choose one with --series-uid")
    assert post(client, files={"files": ("two.zip", two)}, series_uid="1.2.826.0.1.6").status_code == 200


def test_phantom_by_id(client):
    listing = client.get("/v1/phantoms").json()
    assert [p["id"] for p in listing] == ["sub-002", "sub-003"] and listing[1]["healthy"] is True
    rec = post(client, data={"phantom": "sub-002"}).json()
    assert rec["id"] == "sub-002" and rec["input"] == ["sub-002_flair"] and rec["report"]
    r = post(client, data={"phantom": "../../etc/passwd"})
    assert r.status_code == 404 and "GET /v1/phantoms" in r.json()["error"]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _nifti_pair_header() -> bytes:
    raw = bytearray(nifti_bytes(np.ones((4, 4, 4)), gz=False)[:348])
    raw[344:348] = b"ni1\x00"
    return bytes(raw)


TRUNCATED = blob_nifti()[: len(blob_nifti()) // 2]
NAN = np.ones((8, 8, 8), np.float32)
NAN[2, 2, 2] = np.nan
BAD = [  # (label, file name, body, params, status, start of the error sentence)
    ("not a volume", "notes.nii.gz", b"just some text\n", {}, 415, "notes.nii.gz: is not a volume this service reads"),
    ("gzip, not NIfTI", "x.nii.gz", __import__("gzip").compress(b"hello" * 100), {}, 415,
     "x.nii.gz: is gzip-compressed but not a NIfTI file"),
    ("truncated", "cut.nii.gz", TRUNCATED, {}, 422, "cut.nii.gz: is truncated or corrupt"),
    ("2D", "flat.nii", nifti_bytes(np.ones((16, 16)), gz=False), {}, 422, "flat.nii: is a 2D image"),
    ("4D", "dwi.nii.gz", nifti_bytes(np.random.default_rng(0).random((8, 8, 8, 3))), {}, 422,
     "dwi.nii.gz: is 4D with 3 volumes; choose one with --volume-index (0..2)"),
    ("NaN", "nan.nii.gz", nifti_bytes(NAN), {}, 422, "nan.nii.gz: contains 1 NaN or infinite voxels"),
    ("constant", "zero.nii.gz", nifti_bytes(np.zeros((8, 8, 8))), {}, 422, "zero.nii.gz: is constant"),
    ("empty file", "e.nii", b"", {}, 422, "e.nii: is empty"),
    ("empty zip", "e.zip", _zip({}), {}, 422, "e.zip: holds no DICOM files"),
    ("zip without DICOM", "z.zip", _zip({"a/readme.txt": b"x"}), {}, 422, "z.zip: holds no DICOM files"),
    ("zip bomb", "bomb.zip", _zip({"big.dcm": bytes(UPLOAD_MB * 4 * 2**20 + 1)}), {}, 413,
     f"bomb.zip: unpacks to more than {UPLOAD_MB * 4} MB"),
    ("single DICOM file", "one.dcm", bytes(128) + b"DICM" + bytes(64), {}, 415,
     "one.dcm: is a single DICOM file; send the whole series as one zip"),
    ("NIfTI pair", "a.hdr", _nifti_pair_header(), {}, 415, "a.hdr: is the header of a NIfTI pair"),
    ("detached NRRD", "a.nrrd", b"NRRD0004\ntype: float\ndimension: 3\nsizes: 2 2 2\ndata file: /etc/passwd\n\n",
     {}, 415, "a.nrrd: is an NRRD header whose data lives in another file"),
    ("MetaImage elsewhere", "a.mha", b"ObjectType = Image\nNDims = 3\nElementDataFile = /etc/passwd\n", {}, 415,
     "a.mha: is a MetaImage header whose data lives in another file"),
    ("too large", "big.nii", bytes(UPLOAD_MB * 2**20 + 10), {}, 413, f"upload is larger than the limit of {UPLOAD_MB} MB"),
    ("bad query", "q.nii.gz", blob_nifti(), {"volume_index": "-1"}, 422, "volume_index: Input should be greater"),
]


@pytest.mark.parametrize("label,name,body,params,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_get_the_clis_sentence(client, app, label, name, body, params, status, message):
    r = post(client, files={"files": (name, body)}, **params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error.startswith(message), error
    assert str(app.state.service.tmp_root) not in error  # server paths never leak


def test_4d_with_a_volume_index_is_read(client):
    r = post(client, files={"files": ("dwi.nii.gz", nifti_bytes(np.random.default_rng(0).random((8, 8, 8, 3))))},
             volume_index=1)
    assert r.status_code == 200 and r.json()["report"]


def test_malformed_requests(client):
    assert post(client).json()["error"].startswith("send the scan as multipart/form-data")
    r = post(client, files={"other": (None, "x")})  # a multipart form without any file
    assert r.status_code == 400 and r.json()["error"].startswith("no scan in the request")
    r = post(client, files=[("files", ("a.nii.gz", blob_nifti())), ("files", ("b.nii.gz", blob_nifti()))])
    assert r.status_code == 400
    assert r.json()["error"] == "sent 2 files but the model needs 1 (flair), one 'files' part each, in that order"
    r = post(client, files={"files": ("a.nii.gz", blob_nifti())}, data={"phantom": "sub-002"})
    assert r.status_code == 400 and "not both" in r.json()["error"]
    r = client.post("/v1/reports", content=b"x" * 10, headers={"content-type": "multipart/form-data; boundary=zz",
                                                                  "content-length": str(UPLOAD_MB * 2**20 + 1)})
    assert r.status_code == 413  # refused from the declared length, before reading


def test_full_queue_answers_503_with_retry_after(client, app):
    batcher = app.state.service.batcher
    with contextlib.ExitStack() as stack:
        for _ in range(batcher.capacity):
            stack.enter_context(batcher.admission())
        r = post(client, files={"files": ("a.nii.gz", blob_nifti())})
        assert client.get("/v1/health").json()["queue"]["length"] == batcher.capacity
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"].startswith("the report queue is full; retry in")
    assert "brain3d_rejected_total 1.0" in client.get("/metrics").text
    assert post(client, files={"files": ("a.nii.gz", blob_nifti())}).status_code == 200  # places freed again


def test_page_view_slices_show_the_patients_left_on_the_left(client):
    from PIL import Image

    ras = np.zeros((32, 20, 12), np.float32)  # stored LPS below; blob in the patient's left (low x in RAS)
    ras[:] = 0.2
    ras[4:10, 6:14, 3:9] = 1.0
    lps, affine = reoriented(ras, np.diag([2.0, 1.0, 3.0, 1.0]), "LPS")
    r = post(client, files={"files": ("v.nii.gz", nifti_bytes(lps, affine))}, view="true")
    url = r.headers["brain3d-view"]
    info = client.get(url).json()
    assert info["shape"] == [12, 20, 32] and info["spacing"] == [3.0, 1.0, 2.0] and not info["overlay"]
    assert info["planes"]["axial"]["labels"] == {"left": "L", "right": "R", "bottom": "P", "top": "A"}
    png = client.get(f"{url}/axial/5.png")
    assert png.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"), dtype=float)
    assert img.shape[1] / img.shape[0] == pytest.approx(64 / 20, rel=0.05)  # true mm proportions (W 64 mm, H 20)
    half = img.shape[1] // 2
    assert img[:, :half].mean() > 2 * img[:, half:].mean()  # the blob is drawn on the left
    vol = client.get(f"{url}/volume.nii.gz")
    assert vol.status_code == 200 and vol.content[:2] == b"\x1f\x8b"
    assert client.get(f"{url}/overlay.nii.gz").status_code == 404
    assert client.get("/v1/views/nope").status_code == 404
    assert client.get(f"{url}/oblique/1.png").status_code == 422


def test_metrics_count_requests_reports_and_batches(client):
    post(client, files={"files": ("a.nii.gz", blob_nifti())})
    text = client.get("/metrics").text
    assert 'brain3d_requests_total{method="POST",route="/v1/reports",status="200"}' in text
    assert 'brain3d_reports_total{outcome="ok"}' in text and "brain3d_batch_size_count" in text
    assert "brain3d_queue_length 0.0" in text and "brain3d_queue_capacity 6.0" in text
    assert 'brain3d_request_seconds_bucket{le="0.05",route="/v1/reports"}' in text


def test_nifti2_is_recognised(client):
    import nibabel as nib

    img = nib.Nifti2Image(np.transpose(blob_volume("left", 5), (2, 1, 0)), np.eye(4))
    assert struct.unpack("<i", img.to_bytes()[:4])[0] == 540
    assert post(client, files={"files": ("n2.nii", img.to_bytes())}).status_code == 200


def test_reports_are_loaded_once_not_from_disk_again(client, app, monkeypatch):
    import brain3d.reporting.runner as runner

    calls = []
    monkeypatch.setattr(runner, "load_for_model", lambda *a, **k: calls.append(a) or load_for_model(*a, **k))
    assert post(client, files={"files": ("a.nii.gz", blob_nifti())}).status_code == 200
    assert calls == []  # the batcher used the volume read at upload time


def test_streamed_upload_stops_at_the_cap(client):
    def body():
        yield b'--zz\r\nContent-Disposition: form-data; name="files"; filename="big.nii"\r\n\r\n'
        for _ in range(UPLOAD_MB * 4):
            yield bytes(2**19)

    r = client.post("/v1/reports", content=body(), headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 413 and r.json()["error"] == f"upload is larger than the limit of {UPLOAD_MB} MB"
