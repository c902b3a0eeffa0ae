"""Running the app under uvicorn: in the foreground (`brain3d serve`) or in a background thread on a free port
(the browser test and the load benchmark talk to a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from fastapi import FastAPI


def _server(app: FastAPI, host: str, port: int):
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         timeout_graceful_shutdown=10))


def run(app: FastAPI, host: str, port: int) -> None:
    """Serve until interrupted."""
    _server(app, host, port).run()


@contextlib.contextmanager
def in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0) -> Iterator[str]:
    """Serve `app` from a thread; yields its base URL once the model is ready, stops it on exit."""
    import urllib.request

    server = _server(app, host, port)
    thread = threading.Thread(target=server.run, name="brain3d-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not (server.started and server.servers):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://{host}:{bound}"
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=5):
                    break
            except OSError:  # 503 while loading (HTTPError is an OSError), or not yet listening
                if time.monotonic() > deadline:
                    raise RuntimeError("the model did not become ready") from None
                time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
