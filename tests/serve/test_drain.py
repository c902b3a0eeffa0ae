"""Stopping the service: SIGTERM/SIGINT drain it (nothing new admitted, 503 + Retry-After, /readyz draining), what
was admitted is answered, and the process exits 0 with its private folder gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from brain3d.serve.app import create_app
from brain3d.serve.server import in_background
from tests.serve.conftest import blob_nifti, serve_config, started

ROOT = Path(__file__).resolve().parents[2]


def _post(url: str, name: str = "a.nii.gz", **params) -> httpx.Response:
    return httpx.post(f"{url}/v1/reports", params=params, files={"files": (name, blob_nifti())}, timeout=120)


def test_a_draining_service_admits_nothing_and_says_so(trained_checkpoint, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(serve_config(trained_checkpoint, tmp_path, phantoms=None))
    with TestClient(app) as client:
        started(client)
        app.state.service.begin_drain()
        assert client.get("/readyz").status_code == 503 and client.get("/readyz").json()["status"] == "draining"
        assert client.get("/healthz").status_code == 200 and client.get("/v1/health").json()["status"] == "draining"
        for params in ({}, {"explain": "side"}):
            r = client.post("/v1/reports", params=params, files={"files": ("a.nii.gz", blob_nifti())})
            assert r.status_code == 503 and r.json()["error"] == "the service is shutting down; retry in 5 s"
            assert r.headers["retry-after"] == "5"
        assert client.get("/v1/model").json()["error"] == "the service is shutting down; retry in 5 s"
        assert "brain3d_draining 1.0" in client.get("/metrics").text
    assert not app.state.service.tmp_root.exists()


def _held_worker(app):
    """Hold the report worker until the returned event is set (a long batch)."""
    service = app.state.service
    running, release = threading.Event(), threading.Event()
    real = service._run_batch

    def held(jobs):
        running.set()
        release.wait(60)
        return real(jobs)

    service.batcher.run = held
    return running, release


def test_an_admitted_request_is_answered_before_the_server_stops(trained_checkpoint, tmp_path):
    app = create_app(serve_config(trained_checkpoint, tmp_path, phantoms=None))
    service = app.state.service
    with in_background(app) as url, ThreadPoolExecutor(1) as pool:
        running, release = _held_worker(app)
        admitted = pool.submit(_post, url, "admitted.nii.gz")
        assert running.wait(60)
        service.begin_drain()  # what SIGTERM does
        late = _post(url, "late.nii.gz")
        assert late.status_code == 503 and late.headers["retry-after"] == "5"
        assert httpx.get(f"{url}/readyz").json()["status"] == "draining"
        time.sleep(0.3)
        assert not admitted.done()  # still draining: the server waits for it
        release.set()
        r = admitted.result(timeout=60)
        assert r.status_code == 200 and r.json()["id"] == "admitted"
        deadline = time.monotonic() + 30
        while service.tmp_root.exists():  # the server stops on its own once drained and removes the folder
            assert time.monotonic() < deadline, "the drained server did not stop"
            time.sleep(0.05)
    assert service.aborted == 0


def test_a_drain_that_runs_out_of_time_answers_what_is_left_with_503(trained_checkpoint, tmp_path):
    app = create_app(serve_config(trained_checkpoint, tmp_path, phantoms=None, drain_timeout_s=0.5))
    service = app.state.service
    with in_background(app) as url, ThreadPoolExecutor(1) as pool:
        running, release = _held_worker(app)
        stuck = pool.submit(_post, url, "stuck.nii.gz")
        assert running.wait(60)
        t0 = time.monotonic()
        service.begin_drain()
        r = stuck.result(timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error"] == "the service stopped before this request was finished; retry in 5 s"
        assert 0.4 < time.monotonic() - t0 < 10
        release.set()
    assert service.aborted == 1 and not service.tmp_root.exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_under_load_answers_every_admitted_request_and_exits_0(trained_checkpoint, tmp_path):
    """The real thing: `brain3d serve` in its own process, four clients posting, SIGTERM in the middle."""
    port, private = _free_port(), tmp_path / "private"
    proc = subprocess.Popen(
        [sys.executable, "-m", "brain3d", "serve", "--checkpoint", str(trained_checkpoint), "--port", str(port),
         "--device", "cpu", "--max-new-tokens", "8", "--batch", "4", "--queue-size", "8", "--tmp-dir", str(private),
         "--drain-timeout", "30"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "brain3d serve did not become ready"
            time.sleep(0.1)
        outcomes: list[str] = []
        lock, stop = threading.Lock(), threading.Event()

        def client(i: int) -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while not stop.is_set():
                    try:
                        r = http.post("/v1/reports", files={"files": (f"c{i}.nii.gz", blob_nifti())})
                    except httpx.ConnectError:  # the listening socket is closed: not admitted, nothing lost
                        outcome = "refused"
                    except httpx.HTTPError as exc:  # a request cut off without an answer: lost
                        outcome = f"lost: {type(exc).__name__}"
                    else:
                        ok = r.status_code == 200 or (r.status_code == 503 and r.headers.get("retry-after"))
                        outcome = str(r.status_code) if ok else f"bad: {r.status_code} {r.text[:100]}"
                    with lock:
                        outcomes.append(outcome)
                    if outcome in ("refused", "503"):
                        return

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        while len(outcomes) < 6:
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        seconds = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert seconds < 30 + 10
    assert all(o in ("200", "503", "refused") for o in outcomes), outcomes  # nothing lost, nothing else
    assert outcomes.count("200") >= 6
    assert "Traceback" not in err and "stopped after draining" in err
    assert list(private.iterdir()) == []  # the private upload folder went with the process
