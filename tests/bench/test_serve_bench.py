"""bench/serve.py's pieces: the load driver against a live server (refusals are 503s, retried, nothing lost) and
its results.md section, replaced in place."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from brain3d.serve.app import create_app
from brain3d.serve.server import in_background
from tests.serve.conftest import serve_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench():
    import sys

    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH / "serve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_overloaded_server_only_refuses_with_503_and_loses_nothing(trained_checkpoint, tmp_path):
    bench = _bench()
    bodies = bench._uploads(4, (32, 32, 16))
    app = create_app(serve_config(trained_checkpoint, tmp_path, queue_size=1, batch=2))
    with in_background(app) as url:
        run = bench.load(url, bodies, requests=10, clients=4)
    assert run["answered"] == 10 and not run["errors"]
    assert set(run["statuses"]) <= {200, 503} and run["statuses"][200] == 10
    assert run["statuses"].get(503, 0) > 0  # four clients, one place: some were refused, then retried
    summary = bench._summary([run])
    assert summary["p50_s"] <= summary["p95_s"] and summary["reports_per_s"] > 0


def test_results_section_is_replaced_not_repeated(tmp_path):
    bench = _bench()
    md = tmp_path / "results.md"
    md.write_text("# brain3d benchmarks\n\n## Grounding\n\ntable\n\nEvery number above is in results.json.\n",
                  encoding="utf-8")
    bench.write_section(md, f"{bench.SECTION}\n\nfirst\n")
    bench.write_section(md, f"{bench.SECTION}\n\nsecond\n")
    text = md.read_text(encoding="utf-8")
    assert text.count(bench.SECTION) == 1 and "second" in text and "first" not in text
    assert text.index("## Grounding") < text.index(bench.SECTION) < text.index("Every number above")
    assert text.endswith("Every number above is in results.json.\n")
