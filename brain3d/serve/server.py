"""Running the app under uvicorn: in the foreground (`brain3d serve`) or in a background thread on a free port
(the browser test and the load benchmark talk to a real HTTP server on 127.0.0.1).

SIGTERM (every deploy under Kubernetes or systemd) and SIGINT start a drain instead of uvicorn's immediate stop:
the service admits nothing new (503 + Retry-After; /readyz says draining, so a load balancer stops sending), the
requests it admitted finish within `drain_timeout_s` (what is left then is answered 503), and only then does uvicorn
close its connections, the private upload folder is removed and the process exits 0. A second SIGINT stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Iterator

from fastapi import FastAPI

GRACEFUL_S = 5  # after the drain: how long uvicorn lets connections finish before it closes them


def _server(app: FastAPI, host: str, port: int):
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn whose exit signals drain the service first (and are not raised again after the exit)."""

        def handle_exit(self, sig: int, frame) -> None:
            service = app.state.service
            if sig == signal.SIGINT and service.draining:
                self.force_exit = self.should_exit = True  # a second Ctrl+C: stop now
            else:
                service.begin_drain()

        async def on_tick(self, counter: int) -> bool:
            if app.state.service.drained():
                self.should_exit = True
            return await super().on_tick(counter)

    return DrainingServer(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         timeout_graceful_shutdown=GRACEFUL_S))


def run(app: FastAPI, host: str, port: int) -> dict:
    """Serve until a signal's drain is over; returns what the drain did (requests finished, answered 503)."""
    service = app.state.service
    try:
        _server(app, host, port).run()
    finally:
        service.stop()  # also after a forced exit, which skips the app's own shutdown
    return {"drained": service.draining, "aborted": service.aborted,
            "seconds": round(time.monotonic() - service.drain_started, 2) if service.drain_started else None}


@contextlib.contextmanager
def in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 120.0) -> Iterator[str]:
    """Serve `app` from a thread; yields its base URL once the model is ready, stops it on exit (also by a drain:
    `app.state.service.begin_drain()`)."""
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
