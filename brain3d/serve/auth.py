"""Bearer-token authentication for every endpoint but the probes and the page's static files.

The token is compared in constant time, on SHA-256 digests so that not even its length shows in the timing. The
page's HTML, script and style hold no patient data and load without it, so that the page can ask for the token;
everything that takes a scan or returns a report, a view, the model, the metrics or the API description needs it.
TLS is the reverse proxy's job (README); the token only decides who may use the service.
"""

from __future__ import annotations

import hashlib
import hmac
import json

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/static/app.js", "/static/style.css",
                        "/static/vendor/niivue.umd.js"})
REALM = 'Bearer realm="brain3d"'


def _digest(token: str | bytes) -> bytes:
    return hashlib.sha256(token.encode("utf-8") if isinstance(token, str) else token).digest()


def token_matches(header: bytes | None, expected_digest: bytes) -> bool:
    """Whether an Authorization header value carries the token: `Bearer <token>`, scheme case-insensitive."""
    scheme, _, given = (header or b"").strip().partition(b" ")
    if scheme.lower() != b"bearer":
        given = b""
    return hmac.compare_digest(_digest(given.strip()), expected_digest) and bool(given.strip())


class BearerAuth:
    """ASGI middleware: a request without the token gets 401 with one sentence and WWW-Authenticate."""

    def __init__(self, app, token: str) -> None:
        self.app, self.expected = app, _digest(token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization")
        if token_matches(header, self.expected):
            await self.app(scope, receive, send)
            return
        sentence = ("this service needs a token: send the header 'Authorization: Bearer <token>'" if header is None
                    else "the token is not valid for this service")
        body = json.dumps({"error": sentence}).encode("utf-8")
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", REALM.encode())]})
        await send({"type": "http.response.body", "body": body})
