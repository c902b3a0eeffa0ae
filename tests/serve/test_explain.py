"""`?explain=side`: the record carries the same side explanation as `brain3d report --explain`, and the page view
gets the LIME map as an overlay on the scan's grid."""

from __future__ import annotations

import io

import numpy as np

import brain3d.serve.service as service_module
from brain3d.reporting.schema import ReportRecord
from tests.serve.conftest import blob_nifti


def _with_report(monkeypatch, text: str) -> None:
    """Let the (barely trained) model's report say `text`, so the side explanation has a word to explain; the
    explanation itself runs the real model on the real scan."""
    original = service_module.generate_records

    def generate(*args, **kwargs):
        for rec in original(*args, **kwargs):
            rec.report = text
            yield rec

    monkeypatch.setattr(service_module, "generate_records", generate)


def test_side_explanation_in_the_record_and_overlay_on_the_page(client, monkeypatch):
    from PIL import Image

    _with_report(monkeypatch, "A lesion in the left frontal lobe with surrounding edema.")
    assert client.get("/v1/model").json()["explain_targets"] == ["side"]
    r = client.post("/v1/reports", params={"explain": "side", "view": "true"},
                    files={"files": ("scan.nii.gz", blob_nifti("left", 5))})
    assert r.status_code == 200, r.text
    rec = ReportRecord.model_validate(r.json())
    ex = rec.explanation
    assert ex is not None and ex.error is None and ex.word == "left" and ex.map is None  # no files on the server
    assert ex.score is not None and all(s.weight > 0 for s in ex.top_supporting)
    url = r.headers["brain3d-view"]
    assert client.get(url).json()["overlay"] is True
    overlay = client.get(f"{url}/overlay.nii.gz")
    assert overlay.status_code == 200 and overlay.content[:2] == b"\x1f\x8b"
    planes = [np.asarray(Image.open(io.BytesIO(client.get(f"{url}/axial/{i}.png", params={"overlay": on}).content)))
              for on in ("true", "false") for i in range(0, 32, 4)]
    with_overlay, without = planes[:8], planes[8:]
    assert any(not np.array_equal(a, b) for a, b in zip(with_overlay, without))  # the map is drawn somewhere


def test_a_report_without_a_side_keeps_its_report_and_says_why(client, monkeypatch):
    _with_report(monkeypatch, "No abnormality is seen.")
    r = client.post("/v1/reports", params={"explain": "side"}, files={"files": ("s.nii.gz", blob_nifti("left", 5))})
    assert r.status_code == 200
    body = r.json()
    assert body["report"] == "No abnormality is seen."
    assert body["explanation"]["error"].startswith("s.nii.gz: its report names no side")
    assert body["explanation"]["top_supporting"] == []


def test_only_side_can_be_explained(client):
    r = client.post("/v1/reports", params={"explain": "lobes"}, files={"files": ("s.nii.gz", blob_nifti())})
    assert r.status_code == 422 and r.json()["error"].startswith("explain: Input should be 'side'")


def test_a_plain_report_does_not_wait_behind_an_explanation(client, app, monkeypatch):
    """The explanation lane has its own worker: while one explanation runs (held here), a plain report is answered."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    service = app.state.service
    started, release = threading.Event(), threading.Event()
    real = service._explain

    def held(job, result):
        started.set()
        release.wait(60)
        real(job, result)

    monkeypatch.setattr(service, "_explain", held)
    _with_report(monkeypatch, "A lesion in the left frontal lobe.")
    with ThreadPoolExecutor(2) as pool:
        try:
            explained = pool.submit(client.post, "/v1/reports", params={"explain": "side"},
                                    files={"files": ("e.nii.gz", blob_nifti("left", 5))})
            assert started.wait(60)
            assert client.get("/v1/health").json()["explain_queue"] == {"length": 1, "capacity": 2, "running": 1}
            plain = pool.submit(client.post, "/v1/reports", files={"files": ("p.nii.gz", blob_nifti("right", 6))})
            r = plain.result(timeout=60)  # on a shared worker this would wait for `release`, which comes later
            assert r.status_code == 200 and r.json()["explanation"] is None and not explained.done()
        finally:
            release.set()
        r = explained.result(timeout=120)
    assert r.status_code == 200 and r.json()["explanation"]["word"] == "left"
    text = client.get("/metrics").text
    assert 'brain3d_explanations_total{outcome="ok"}' in text and "brain3d_explain_seconds_count" in text


def test_a_full_explanation_queue_answers_503_and_plain_reports_still_go(client, app):
    import contextlib

    lane = app.state.service.explainer
    with contextlib.ExitStack() as stack:
        for _ in range(lane.capacity):
            stack.enter_context(lane.admission())
        refused = client.post("/v1/reports", params={"explain": "side"}, files={"files": ("s.nii.gz", blob_nifti())})
        plain = client.post("/v1/reports", files={"files": ("s.nii.gz", blob_nifti())})
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"].startswith("the explanation queue is full; retry in")
    assert plain.status_code == 200
    text = client.get("/metrics").text
    assert "brain3d_explain_rejected_total 1.0" in text and "brain3d_rejected_total 0.0" in text
    assert "brain3d_explain_queue_capacity 2.0" in text and "brain3d_explain_queue_length 0.0" in text
