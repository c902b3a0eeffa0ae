"""A bearer token: 401 on every endpoint but the probes and the page's static files without it, as today with it;
`brain3d serve` refuses a non-loopback address without one."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from brain3d.cli import main
from brain3d.errors import ConfigError
from brain3d.serve.app import create_app
from brain3d.serve.auth import OPEN_PATHS, token_matches, _digest
from brain3d.serve.config import ServeConfig, is_loopback, read_token
from tests.serve.conftest import blob_nifti, serve_config, started

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def secured(trained_checkpoint, tmp_path_factory):
    from fastapi.testclient import TestClient

    app = create_app(serve_config(trained_checkpoint, tmp_path_factory.mktemp("auth"), token=TOKEN))
    with TestClient(app) as client:
        yield started(client), app


def _every_endpoint(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app has, path parameters filled in."""
    out = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            path = re.sub(r"\{plane\}", "axial", route.path)
            path = re.sub(r"\{[^}]+\}", "1", path)
            out += [(m, path) for m in sorted(route.methods - {"HEAD"})]
        elif isinstance(route, Mount):
            out += [("GET", f"{route.path}/app.js"), ("GET", f"{route.path}/style.css"),
                    ("GET", f"{route.path}/index.html")]
        else:  # the docs pages
            out += [("GET", route.path)]
    return out


def test_without_the_token_every_protected_endpoint_answers_401(secured):
    client, app = secured
    endpoints = _every_endpoint(app)
    protected = [(m, p) for m, p in endpoints if p not in OPEN_PATHS]
    assert {"/v1/reports", "/v1/health", "/v1/model", "/metrics", "/openapi.json", "/docs",
            "/v1/views/1/axial/1.png", "/static/index.html"} <= {p for _, p in protected}
    for method, path in protected:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                        {"Authorization": "Basic " + TOKEN}):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"] == 'Bearer realm="brain3d"'
            assert r.json()["error"] in ("this service needs a token: send the header 'Authorization: Bearer <token>'",
                                         "the token is not valid for this service")
    for method, path in endpoints:  # the probes and the page's shell answer anyone
        if path in OPEN_PATHS and path != "/static/vendor/niivue.umd.js":
            assert client.request(method, path).status_code == 200, path


def test_with_the_token_the_service_works_as_before(secured):
    client, _ = secured
    r = client.post("/v1/reports", params={"view": "true"}, files={"files": ("a.nii.gz", blob_nifti())}, headers=AUTH)
    assert r.status_code == 200 and r.json()["report"]
    view = r.headers["brain3d-view"]
    assert client.get(f"{view}/axial/3.png", headers=AUTH).headers["content-type"] == "image/png"
    assert client.get(f"{view}/axial/3.png").status_code == 401
    assert client.get("/v1/model", headers={"authorization": f"bearer  {TOKEN} "}).status_code == 200
    assert 'status="401"' in client.get("/metrics", headers=AUTH).text  # refusals are counted


def test_token_comparison():
    expected = _digest(TOKEN)
    assert token_matches(f"Bearer {TOKEN}".encode(), expected)
    for header in (None, b"", b"Bearer", b"Bearer ", f"Bearer {TOKEN}x".encode(), f"Token {TOKEN}".encode(),
                   TOKEN.encode()):
        assert not token_matches(header, expected)


def test_loopback_and_token_rules(tmp_path):
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "my-workstation"]))
    ckpt = tmp_path
    with pytest.raises(ConfigError, match="^listening on 0.0.0.0 would let anyone who can reach this machine upload"):
        ServeConfig(checkpoint=ckpt, host="0.0.0.0")
    ServeConfig(checkpoint=ckpt, host="0.0.0.0", token=TOKEN)
    ServeConfig(checkpoint=ckpt, host="0.0.0.0", insecure_no_token=True)
    with pytest.raises(ConfigError, match="has 5 characters; use at least 16"):
        ServeConfig(checkpoint=ckpt, token="short")
    assert TOKEN not in repr(ServeConfig(checkpoint=ckpt, token=TOKEN))  # never printed
    f = tmp_path / "token"
    f.write_text(f"  {TOKEN}\n")
    assert read_token(f) == TOKEN
    f.write_text("\n")
    with pytest.raises(ConfigError, match=f"^{f}: the token file is empty$"):
        read_token(f)
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'nope'}: cannot read the token file"):
        read_token(tmp_path / "nope")


@pytest.fixture
def no_serving(monkeypatch):
    """`brain3d serve` up to the point of listening: what it would serve is recorded instead."""
    import brain3d.serve.server as server

    seen = {}

    def run(app, host, port):
        seen.update(app=app, host=host)
        return {"drained": False, "aborted": 0, "seconds": None}

    monkeypatch.setattr(server, "run", run)
    monkeypatch.delenv("BRAIN3D_SERVE_TOKEN", raising=False)
    return seen


def test_serve_refuses_a_network_address_without_a_token(trained_checkpoint, tmp_path, capsys, monkeypatch,
                                                          no_serving):
    base = ["serve", "--checkpoint", str(trained_checkpoint), "--tmp-dir", str(tmp_path / "t")]
    assert main([*base, "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: listening on 0.0.0.0 would let anyone") and "--insecure-no-token" in err
    assert len(err.splitlines()) == 1 and no_serving == {}
    short = tmp_path / "short"
    short.write_text("abc")
    assert main([*base, "--host", "0.0.0.0", "--token-file", str(short)]) == 2
    assert "use at least 16" in capsys.readouterr().err
    # a token from the environment is enough, and then required on loopback too
    monkeypatch.setenv("BRAIN3D_SERVE_TOKEN", TOKEN)
    assert main([*base, "--host", "0.0.0.0"]) == 0
    assert no_serving["app"].state.service.cfg.token == TOKEN
    assert "every API request needs the token" in capsys.readouterr().err
    monkeypatch.delenv("BRAIN3D_SERVE_TOKEN")
    assert main([*base, "--host", "0.0.0.0", "--insecure-no-token"]) == 0
    assert "WITHOUT A TOKEN" in capsys.readouterr().err
