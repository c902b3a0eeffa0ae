"""`brain3d serve` under load: a real server on 127.0.0.1, many concurrent clients, batched vs one at a time.

The tiny twin at the demo profile (32x64x64 volumes, 32 visual tokens; --quick: 16x32x32), untrained (only the
serving path is measured), saved as a checkpoint and served by the `brain3d serve` command in its own process (one
torch thread). Clients are threads posting small NIfTI uploads over HTTP. The runs (--parts, all by default):

- batched (--batch B) and one at a time (--batch 1), with a queue that fits every client, timed alternately in
  halves so a change of machine load hits both alike: reports/s, latency p50/p95, and their ratio;
- overload: a queue smaller than the number of clients, where every refusal must be a 503 with Retry-After and
  every client, honouring it, must still get its report: nothing lost, no other error;
- mixed: the same server with and without 10% of requests asking for `?explain=side` (3D LIME, on its own lane),
  timed alternately in halves: the p95 latency of the plain reports with explanations in the mix must stay within
  1.5x of the run without;
- drain: SIGTERM while clients post (10% explanations): every admitted request answered (200, or 503 with
  Retry-After), none lost, the process exits 0 within its drain bound, the private folder gone.

The untrained twin's reports name no side, so in the mixed and drain runs the server (`--planted-serve`) ends every
report with a side sentence: each explanation then runs its full LIME, as on a trained model.

Writes bench/serve.json (parts not run keep their earlier numbers) and its section of bench/results.md
(bench/run.py keeps that section on a full rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, tiny_brain3d, tiny_models, write_section  # noqa: E402

BENCH = Path(__file__).resolve().parent
SECTION = "## Serving under load"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _uploads(n: int, shape: tuple[int, int, int], seed: int = 0) -> list[bytes]:
    """`n` distinct small NIfTI volumes (RAS, 2 mm) with a bright blob on alternating sides."""
    import gzip

    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.normal(0.3, 0.05, shape).astype(np.float32)
        c = [s // 2 for s in shape]
        c[0] = shape[0] // 4 if i % 2 else 3 * shape[0] // 4  # RAS x: left or right hemisphere
        x[tuple(slice(max(0, k - 3), k + 3) for k in c)] = 1.0
        out.append(gzip.compress(nib.Nifti1Image(x, np.diag([2.0, 2.0, 2.0, 1.0])).to_bytes(), mtime=0))
    return out


PLANTED = " A lesion in the left frontal lobe."


def planted_serve(argv: list[str]) -> int:
    """`brain3d serve` whose reports end with a side sentence (see the module docstring)."""
    import brain3d.serve.service as service
    from brain3d.cli import main

    original = service.generate_records

    def generate(*args, **kwargs):
        for rec in original(*args, **kwargs):
            rec.report = rec.report + PLANTED
            yield rec

    service.generate_records = generate
    return main(["serve", *argv])


class Server:
    """`brain3d serve` in a subprocess on a free 127.0.0.1 port, ready once /readyz says so."""

    def __init__(self, checkpoint: Path, batch: int, queue_size: int, max_new_tokens: int, tmp: Path,
                 *extra: str, planted: bool = False) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(tmp))
        entry = [str(Path(__file__).resolve()), "--planted-serve"] if planted else ["-m", "brain3d", "serve"]
        self.proc = subprocess.Popen(
            [sys.executable, *entry, "--checkpoint", str(checkpoint), "--port", str(self.port),
             "--batch", str(batch), "--queue-size", str(queue_size), "--max-new-tokens", str(max_new_tokens),
             "--device", "cpu", "--max-wait-ms", "20", *extra],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> "Server":
        import httpx

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"brain3d serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("brain3d serve did not become ready")

    def metrics(self) -> str:
        import httpx

        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load(url: str, bodies: list[bytes], requests: int, clients: int, honour_retry: bool = True,
         explain_every: int | None = None) -> dict:
    """`requests` POSTs from `clients` threads; a 503 is retried after its Retry-After. Every outcome is recorded.
    With `explain_every` = k, every k-th request asks for `?explain=side`; `latencies` are the plain reports'."""
    import httpx

    lock = threading.Lock()
    next_index = [0]
    done: dict[int, dict] = {}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    explain_latencies: list[float] = []
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                with lock:
                    i = next_index[0]
                    if i >= requests:
                        return
                    next_index[0] += 1
                body = bodies[i % len(bodies)]
                explain = explain_every is not None and i % explain_every == explain_every // 2
                params = {"explain": "side"} if explain else {}
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = http.post("/v1/reports", params=params, files={"files": (f"r{i}.nii.gz", body)})
                    except httpx.HTTPError as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                        break
                    seconds = time.perf_counter() - t0
                    with lock:
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 503 and honour_retry:
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    with lock:
                        if r.status_code == 200:
                            done[i] = r.json()
                            (explain_latencies if explain else latencies).append(seconds)
                        else:
                            errors.append(f"{r.status_code}: {r.text[:200]}")
                    break

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": requests, "answered": len(done), "wall_s": wall, "latencies": latencies,
            "explain_latencies": explain_latencies, "statuses": statuses, "errors": errors, "reports": done}


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _summary(runs: list[dict]) -> dict:
    lat = [x for r in runs for x in r["latencies"]]
    wall = sum(r["wall_s"] for r in runs)
    answered = sum(r["answered"] for r in runs)
    statuses: dict[str, int] = {}
    for r in runs:
        for code, n in r["statuses"].items():
            statuses[str(code)] = statuses.get(str(code), 0) + n
    return {"requests": sum(r["requests"] for r in runs), "answered": answered, "wall_s": round(wall, 2),
            "reports_per_s": round(answered / wall, 2), "p50_s": round(_pct(lat, 50), 3),
            "p95_s": round(_pct(lat, 95), 3), "statuses": statuses, "errors": [e for r in runs for e in r["errors"]]}


def _batch_sizes(metrics: str) -> float | None:
    """Mean scans per model batch from the server's own Prometheus histogram."""
    values = {}
    for line in metrics.splitlines():
        for key in ("brain3d_batch_size_sum", "brain3d_batch_size_count"):
            if line.startswith(key + " "):
                values[key] = float(line.split()[1])
    count = values.get("brain3d_batch_size_count")
    return round(values["brain3d_batch_size_sum"] / count, 2) if count else None


PARTS = ("batched", "overload", "mixed", "drain")


def run(quick: bool = False, requests: int = 200, clients: int = 16, batch: int = 8, max_new_tokens: int = 32,
        overload_queue: int = 4, models: dict[str, Path] | None = None, parts: tuple[str, ...] = PARTS,
        explain_samples: int = 32, drain_timeout: float = 30.0) -> dict:
    """The runs of `parts`; see the module docstring. Returns the numbers written to serve.json."""
    import torch

    torch.set_num_threads(1)
    result: dict = {"quick": quick, "requests": requests, "clients": clients, "batch": batch,
                    "max_new_tokens": max_new_tokens, "host": "127.0.0.1", "threads": 1}
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-serve-") as tmp:
        tmp = Path(tmp)
        model = tiny_brain3d(models or tiny_models(tmp / "tiny"), quick)
        ckpt = model.save_pretrained(tmp / "ckpt")
        grid = list(model.config.image_size)  # (D, H, W)
        shape = tuple(grid[::-1])  # stored RAS (x, y, z) = model (W, H, D)
        del model
        result["volume"] = [1, *grid]
        bodies = _uploads(16, shape)
        if "batched" in parts:
            result.update(_batched(ckpt, bodies, requests, clients, batch, max_new_tokens, tmp))
        if "overload" in parts:
            with Server(ckpt, batch, overload_queue, max_new_tokens, tmp) as small:
                overload = load(small.url, bodies, requests, clients)
                mean = _batch_sizes(small.metrics())
            result["overload"] = {**_summary([overload]), "queue_size": overload_queue, "mean_batch": mean}
        if "mixed" in parts:
            result["mixed"] = mixed(ckpt, bodies, requests, clients, batch, max_new_tokens, explain_samples, tmp)
        if "drain" in parts:
            result["drain"] = drain(ckpt, bodies, clients, batch, max_new_tokens, explain_samples, drain_timeout, tmp)
        result["leftover_upload_folders"] = sorted(p.name for p in tmp.glob("brain3d-serve-*"))
    result["machine"] = machine()
    return result


def _batched(ckpt: Path, bodies: list[bytes], requests: int, clients: int, batch: int, max_new_tokens: int,
             tmp: Path) -> dict:
    """Batched vs one at a time, alternating halves on two servers."""
    half = requests // 2
    runs: dict[str, list[dict]] = {"batched": [], "one_at_a_time": []}
    with Server(ckpt, batch, max(clients, 2 * batch), max_new_tokens, tmp) as batched, \
            Server(ckpt, 1, max(clients, 2 * batch), max_new_tokens, tmp) as single:
        for n in (half, requests - half):  # alternate halves: load changes hit both modes alike
            runs["batched"].append(load(batched.url, bodies, n, clients))
            runs["one_at_a_time"].append(load(single.url, bodies, n, clients))
        mean_batch = {"batched": _batch_sizes(batched.metrics()), "one_at_a_time": _batch_sizes(single.metrics())}
    same = [r["reports"][i]["report"] for r in runs["batched"] for i in sorted(r["reports"])][:8]
    single_reports = [r["reports"][i]["report"] for r in runs["one_at_a_time"] for i in sorted(r["reports"])][:8]
    b, s = _summary(runs["batched"]), _summary(runs["one_at_a_time"])
    return {"batched": {**b, "mean_batch": mean_batch["batched"]},
            "one_at_a_time": {**s, "mean_batch": mean_batch["one_at_a_time"]},
            "speedup": round(b["reports_per_s"] / s["reports_per_s"], 2),
            "same_reports_batched_and_single": same == single_reports}


def mixed(ckpt: Path, bodies: list[bytes], requests: int, clients: int, batch: int, max_new_tokens: int,
          explain_samples: int, tmp: Path) -> dict:
    """Plain reports' latency with and without 10% explanations in the mix, on one server, alternating halves."""
    half = requests // 2
    runs: dict[str, list[dict]] = {"plain": [], "with_explanations": []}
    with Server(ckpt, batch, max(clients, 2 * batch), max_new_tokens, tmp, "--explain-samples", str(explain_samples),
                planted=True) as server:
        load(server.url, bodies, 2 * batch, clients)  # warm-up, not counted
        for n in (half, requests - half):
            runs["plain"].append(load(server.url, bodies, n, clients))
            runs["with_explanations"].append(load(server.url, bodies, n, clients, explain_every=10))
        metrics = server.metrics()
    p, m = _summary(runs["plain"]), _summary(runs["with_explanations"])
    explain_lat = [x for r in runs["with_explanations"] for x in r["explain_latencies"]]
    explained = [rep for r in runs["with_explanations"] for rep in r["reports"].values() if rep.get("explanation")]
    ok_explained = [e for e in explained if e["explanation"].get("error") is None]
    ratio = round(m["p95_s"] / p["p95_s"], 2)
    return {"explain_share": 0.1, "explain_samples": explain_samples, "plain": p, "with_explanations": m,
            "explanations": {"answered": len(explained), "with_map": len(ok_explained),
                             "p50_s": round(_pct(explain_lat, 50), 2) if explain_lat else None,
                             "p95_s": round(_pct(explain_lat, 95), 2) if explain_lat else None,
                             "refused_503": _metric(metrics, "brain3d_explain_rejected_total")},
            "p95_ratio": ratio, "goal": 1.5,
            "ok": ratio <= 1.5 and all(s["answered"] == s["requests"] and not s["errors"] for s in (p, m))
            and len(ok_explained) > 0}


def drain(ckpt: Path, bodies: list[bytes], clients: int, batch: int, max_new_tokens: int, explain_samples: int,
          drain_timeout: float, tmp: Path) -> dict:
    """SIGTERM while `clients` post (every 10th asking for an explanation): what every request got, the exit code,
    the time to exit, what is left in the private folder's parent."""
    import httpx

    private = tmp / "drain-private"
    server = Server(ckpt, batch, max(clients, 2 * batch), max_new_tokens, tmp, "--explain-samples",
                    str(explain_samples), "--tmp-dir", str(private), "--drain-timeout", str(drain_timeout),
                    planted=True)
    server.__enter__()
    outcomes: list[str] = []
    lock, stop = threading.Lock(), threading.Event()
    counter = [0]

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=600) as http:
            while not stop.is_set():
                with lock:
                    i = counter[0]
                    counter[0] += 1
                params = {"explain": "side"} if i % 10 == 5 else {}
                try:
                    r = http.post("/v1/reports", params=params, files={"files": (f"d{i}.nii.gz", bodies[i % len(bodies)])})
                except httpx.ConnectError:  # the listening socket is closed: never admitted, nothing lost
                    outcome = "refused (connection)"
                except httpx.HTTPError as exc:  # cut off without an answer: lost
                    outcome = f"lost ({type(exc).__name__})"
                else:
                    ok = r.status_code == 200 or (r.status_code == 503 and r.headers.get("retry-after"))
                    outcome = (("200" if r.status_code == 200 else "503 + Retry-After") if ok
                               else f"other ({r.status_code})")
                with lock:
                    outcomes.append(outcome)
                if outcome.startswith(("refused", "503")):
                    return

    marks: dict[str, float] = {}

    def probe() -> None:  # when /readyz said draining, and when the port stopped answering
        with httpx.Client(base_url=server.url, timeout=2) as http:
            while "closed" not in marks:
                try:
                    if http.get("/readyz").json().get("status") == "draining":
                        marks.setdefault("draining", time.perf_counter())
                except httpx.ConnectError:
                    marks.setdefault("closed", time.perf_counter())
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    while len(outcomes) < 3 * clients:  # well under way: the queue is full of admitted requests
        time.sleep(0.02)
    sent = time.perf_counter()
    server.proc.send_signal(signal.SIGTERM)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        code = server.proc.wait(timeout=drain_timeout + 60)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        code = None
    exit_s = round(time.perf_counter() - sent, 2)
    timeline = {k: round(v - sent, 2) for k, v in marks.items()}
    stop.set()
    for t in threads:
        t.join(120)
    err = server.proc.stderr.read()
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    left = sorted(str(p.relative_to(private)) for p in private.rglob("*")) if private.exists() else []
    return {"clients": clients, "drain_timeout_s": drain_timeout, "exit_code": code, "exit_s": exit_s,
            "readyz_draining_after_s": timeline.get("draining"), "port_closed_after_s": timeline.get("closed"),
            "outcomes": counts, "left_in_private_folder": left, "stderr_tail": err.strip().splitlines()[-2:],
            "ok": code == 0 and exit_s <= drain_timeout + 10 and not left
            and set(counts) <= {"200", "503 + Retry-After", "refused (connection)"}}


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def markdown(r: dict) -> str:
    """The results.md section (the parts serve.json holds)."""
    lines = [SECTION, "",
             f"`bench/serve.py{' --quick' if r['quick'] else ''}`: `brain3d serve` in its own process on 127.0.0.1 "
             f"(1 torch thread), {r['clients']} concurrent HTTP clients, {r['requests']} uploads per mode "
             f"(NIfTI, model grid {'x'.join(map(str, r['volume'][1:]))}), untrained tiny twin, greedy, up to "
             f"{r['max_new_tokens']} new tokens; compared modes timed alternately in halves. Measured on a shared, "
             f"busy 2-core machine; load average {r['machine']['load_average']} at the end."]
    if "batched" in r:
        rows = [("batched", f"batch {r['batch']}, queue fits all clients", r["batched"]),
                ("one at a time", "batch 1, same queue", r["one_at_a_time"])]
        if "overload" in r:
            rows.append(("overload", f"batch {r['batch']}, queue {r['overload']['queue_size']} < {r['clients']} "
                                     "clients", r["overload"]))
        lines += ["", "| mode | settings | answered | statuses | reports/s | p50 | p95 | mean batch |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, settings, s in rows:
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
            lines.append(f"| {name} | {settings} | {s['answered']}/{s['requests']} | {codes} | "
                         f"{s['reports_per_s']:.2f} | {s['p50_s']:.2f} s | {s['p95_s']:.2f} s | {s['mean_batch']} |")
        lines += ["", f"- Batched serving: **{r['speedup']:.2f}x** the reports/s of one at a time, in the same run; "
                  f"identical report texts both ways: {r['same_reports_batched_and_single']}."]
        if "overload" in r:
            o = r["overload"]
            lines.append(f"- Overload: every refusal was a 503 with Retry-After ({o['statuses'].get('503', 0)} of "
                         f"them), no other error, and every client still got its report ({o['answered']}/"
                         f"{o['requests']}); latencies count answered attempts only.")
    if "mixed" in r:
        m = r["mixed"]
        p, w, e = m["plain"], m["with_explanations"], m["explanations"]
        lines += ["", "### Explanations on their own lane", "",
                  f"Same server, {r['requests']} requests per run, alternating halves: without explanations, and with "
                  f"every 10th request asking for `?explain=side` (3D LIME, {m['explain_samples']} samples, on the "
                  "explanation lane: one worker at lower CPU priority, capacity 2). Latencies of plain reports only.",
                  "", "| run | answered | statuses | plain p50 | plain p95 |", "|---|---|---|---|---|"]
        for name, s in (("no explanations", p), ("10% explanations", w)):
            codes = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
            lines.append(f"| {name} | {s['answered']}/{s['requests']} | {codes} | {s['p50_s']:.2f} s | "
                         f"{s['p95_s']:.2f} s |")
        lines += ["", f"- Plain reports' p95 with explanations in the mix: **{m['p95_ratio']:.2f}x** the p95 without "
                  f"(goal ≤ {m['goal']}x): {'met' if m['p95_ratio'] <= m['goal'] else 'NOT met'}.",
                  f"- Explanations answered: {e['answered']} ({e['with_map']} with a LIME map), p50 {e['p50_s']} s, "
                  f"p95 {e['p95_s']} s; refused with 503 + Retry-After while their lane was full (then retried): "
                  f"{int(e['refused_503'] or 0)}; every request answered, none lost: "
                  f"{all(s['answered'] == s['requests'] and not s['errors'] for s in (p, w))}."]
    if "drain" in r:
        d = r["drain"]
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(d["outcomes"].items()))
        lines += ["", "### SIGTERM under load", "",
                  f"{d['clients']} clients posting (every 10th with an explanation) when the server gets SIGTERM "
                  f"(drain bound {d['drain_timeout_s']:g} s). Every request's outcome: {outcomes}.", "",
                  f"- /readyz said draining {d['readyz_draining_after_s']} s after the signal; the port closed after "
                  f"{d['port_closed_after_s']} s (every admitted request answered by then); the process exited after "
                  f"{d['exit_s']} s (the rest is the Python interpreter's own shutdown: torch, transformers).",
                  f"- Exit code **{d['exit_code']}** after **{d['exit_s']} s**; every admitted request answered (200, "
                  "or 503 with Retry-After once draining), none cut off; refused connections came after the "
                  f"listening socket closed. Private folder afterwards: {'gone' if not d['left_in_private_folder'] else d['left_in_private_folder']}.",
                  f"- The server's last words: {' / '.join(d['stderr_tail'])}"]
    if "leftover_upload_folders" in r:
        lines += ["", f"- Upload folders left behind in all runs: {len(r['leftover_upload_folders'])}."]
    return "\n".join(lines) + "\n"


def _ok(r: dict) -> bool:
    """Every part that ran met its checks."""
    ok = not r.get("leftover_upload_folders")
    for key in ("batched", "one_at_a_time", "overload"):
        if key in r:
            s = r[key]
            ok &= s["answered"] == s["requests"] and not s["errors"] and set(s["statuses"]) <= {"200", "503"}
    for key in ("mixed", "drain"):
        if key in r:
            ok &= r[key]["ok"]
    return bool(ok)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--planted-serve":
        sys.exit(planted_serve(argv[1:]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small volumes (16x32x32) and few requests, for tests")
    ap.add_argument("--requests", type=int, default=None, help="requests per mode (default 200; --quick 24)")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 16; --quick 6)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 32; --quick 8")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)} (default all)")
    ap.add_argument("--explain-samples", type=int, default=32, help="LIME samples per explanation (mixed, drain)")
    ap.add_argument("--drain-timeout", type=float, default=30.0, help="the server's drain bound in the drain run")
    ap.add_argument("--out", type=Path, default=BENCH, help="folder of serve.json and results.md (default bench/)")
    a = ap.parse_args(argv)
    parts = tuple(p for p in a.parts.split(",") if p)
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))}")
    r = run(a.quick, a.requests or (24 if a.quick else 200), a.clients or (6 if a.quick else 16), a.batch,
            a.max_new_tokens or (8 if a.quick else 32), overload_queue=2 if a.quick else 4, parts=parts,
            explain_samples=a.explain_samples, drain_timeout=a.drain_timeout)
    a.out.mkdir(parents=True, exist_ok=True)
    from brain3d.fsutil import atomic_write_json

    earlier = a.out / "serve.json"
    if earlier.is_file() and set(parts) != set(PARTS):  # parts not run keep their numbers
        old = json.loads(earlier.read_text(encoding="utf-8"))
        same = all(old.get(k) == r[k] for k in ("quick", "requests", "clients", "batch", "max_new_tokens"))
        r = {**old, **r} if same else r
    r["ok"] = _ok(r)
    r["quote"] = _quote(r)
    atomic_write_json(earlier, r)
    write_section(a.out / "results.md", markdown(r))
    print(r["quote"] + ("" if r["ok"] else "  (FAILED: see serve.json)"))
    return r


def _quote(r: dict) -> str:
    parts = []
    if "batched" in r:
        parts.append(f"{r['batched']['reports_per_s']} reports/s batched (batch {r['batch']}) vs "
                     f"{r['one_at_a_time']['reports_per_s']} one at a time ({r['speedup']:.1f}x)")
    if "mixed" in r:
        parts.append(f"plain p95 with 10% explanations {r['mixed']['p95_ratio']:.2f}x the p95 without")
    if "drain" in r:
        parts.append(f"SIGTERM under load: exit {r['drain']['exit_code']} after {r['drain']['exit_s']} s")
    return "; ".join(parts) + f" ({r['requests']} requests per run from {r['clients']} clients, tiny twin, CPU)"


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
