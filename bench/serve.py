"""`brain3d serve` under load: a real server on 127.0.0.1, many concurrent clients, batched vs one at a time.

The tiny twin at the demo profile (32x64x64 volumes, 32 visual tokens; --quick: 16x32x32), untrained (only the
serving path is measured), saved as a checkpoint and served by the `brain3d serve` command in its own process (one
torch thread). Clients are threads posting small NIfTI uploads over HTTP. Three runs in one go:

- batched (--batch B) and one at a time (--batch 1), with a queue that fits every client, timed alternately in
  halves so a change of machine load hits both alike: reports/s, latency p50/p95, and their ratio;
- overload: a queue smaller than the number of clients, where every refusal must be a 503 with Retry-After and
  every client, honouring it, must still get its report: nothing lost, no other error.

Writes bench/serve.json and its section of bench/results.md (bench/run.py keeps that section on a full rerun).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, tiny_brain3d, tiny_models  # noqa: E402

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


class Server:
    """`brain3d serve` in a subprocess on a free 127.0.0.1 port, ready once /readyz says so."""

    def __init__(self, checkpoint: Path, batch: int, queue_size: int, max_new_tokens: int, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(tmp))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "brain3d", "serve", "--checkpoint", str(checkpoint), "--port", str(self.port),
             "--batch", str(batch), "--queue-size", str(queue_size), "--max-new-tokens", str(max_new_tokens),
             "--device", "cpu", "--max-wait-ms", "20"],
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


def load(url: str, bodies: list[bytes], requests: int, clients: int, honour_retry: bool = True) -> dict:
    """`requests` POSTs from `clients` threads; a 503 is retried after its Retry-After. Every outcome is recorded."""
    import httpx

    lock = threading.Lock()
    next_index = [0]
    done: dict[int, dict] = {}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
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
                while True:
                    t0 = time.perf_counter()
                    try:
                        r = http.post("/v1/reports", files={"files": (f"r{i}.nii.gz", body)})
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
                            latencies.append(seconds)
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
            "statuses": statuses, "errors": errors, "reports": done}


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


def run(quick: bool = False, requests: int = 200, clients: int = 16, batch: int = 8, max_new_tokens: int = 32,
        overload_queue: int = 4, models: dict[str, Path] | None = None) -> dict:
    """The three runs; see the module docstring. Returns the numbers written to serve.json."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-serve-") as tmp:
        tmp = Path(tmp)
        model = tiny_brain3d(models or tiny_models(tmp / "tiny"), quick)
        ckpt = model.save_pretrained(tmp / "ckpt")
        grid = list(model.config.image_size)  # (D, H, W)
        shape = tuple(grid[::-1])  # stored RAS (x, y, z) = model (W, H, D)
        del model
        bodies = _uploads(16, shape)
        half = requests // 2
        runs: dict[str, list[dict]] = {"batched": [], "one_at_a_time": []}
        mean_batch: dict[str, float | None] = {}
        with Server(ckpt, batch, max(clients, 2 * batch), max_new_tokens, tmp) as batched, \
                Server(ckpt, 1, max(clients, 2 * batch), max_new_tokens, tmp) as single:
            for n in (half, requests - half):  # alternate halves: load changes hit both modes alike
                runs["batched"].append(load(batched.url, bodies, n, clients))
                runs["one_at_a_time"].append(load(single.url, bodies, n, clients))
            mean_batch = {"batched": _batch_sizes(batched.metrics()), "one_at_a_time": _batch_sizes(single.metrics())}
        with Server(ckpt, batch, overload_queue, max_new_tokens, tmp) as small:
            overload = load(small.url, bodies, requests, clients)
            mean_batch["overload"] = _batch_sizes(small.metrics())
        leftover = sorted(p.name for p in tmp.glob("brain3d-serve-*"))  # private upload folders must be gone
    same = [r["reports"][i]["report"] for r in runs["batched"] for i in sorted(r["reports"])][:8]
    single_reports = [r["reports"][i]["report"] for r in runs["one_at_a_time"] for i in sorted(r["reports"])][:8]
    b, s, o = _summary(runs["batched"]), _summary(runs["one_at_a_time"]), _summary([overload])
    result = {
        "quick": quick, "requests": requests, "clients": clients, "batch": batch, "max_new_tokens": max_new_tokens,
        "volume": [1, *grid], "host": "127.0.0.1", "threads": 1,
        "batched": {**b, "mean_batch": mean_batch["batched"]},
        "one_at_a_time": {**s, "mean_batch": mean_batch["one_at_a_time"]},
        "overload": {**o, "queue_size": overload_queue, "mean_batch": mean_batch["overload"]},
        "speedup": round(b["reports_per_s"] / s["reports_per_s"], 2),
        "same_reports_batched_and_single": same == single_reports,
        "leftover_upload_folders": leftover,
        "machine": machine(),
    }
    result["ok"] = (all(r["answered"] == r["requests"] and not r["errors"] for r in (b, s, o))
                    and set(o["statuses"]) <= {"200", "503"} and not leftover)
    result["quote"] = (f"{b['reports_per_s']} reports/s batched (batch {batch}) vs {s['reports_per_s']} one at a time "
                       f"({result['speedup']:.1f}x; {requests} requests each from {clients} clients, tiny twin, CPU)")
    return result


def markdown(r: dict) -> str:
    """The results.md section."""
    rows = [("batched", f"batch {r['batch']}, queue fits all clients", r["batched"]),
            ("one at a time", "batch 1, same queue", r["one_at_a_time"]),
            ("overload", f"batch {r['batch']}, queue {r['overload']['queue_size']} < {r['clients']} clients",
             r["overload"])]
    lines = [SECTION, "",
             f"`bench/serve.py{' --quick' if r['quick'] else ''}`: `brain3d serve` in its own process on 127.0.0.1 "
             f"(1 torch thread), {r['clients']} concurrent HTTP clients, {r['requests']} uploads per mode "
             f"(NIfTI, model grid {'x'.join(map(str, r['volume'][1:]))}), untrained tiny twin, greedy, up to "
             f"{r['max_new_tokens']} new tokens; batched and one-at-a-time timed alternately in halves. Load average "
             f"{r['machine']['load_average']} at the end.", "",
             "| mode | settings | answered | statuses | reports/s | p50 | p95 | mean batch |", "|---|---|---|---|---|---|---|---|"]
    for name, settings, s in rows:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(s["statuses"].items()))
        lines.append(f"| {name} | {settings} | {s['answered']}/{s['requests']} | {codes} | {s['reports_per_s']:.2f} | "
                     f"{s['p50_s']:.2f} s | {s['p95_s']:.2f} s | {s['mean_batch']} |")
    lines += ["", f"- Batched serving: **{r['speedup']:.2f}x** the reports/s of one at a time, in the same run; "
              f"identical report texts both ways: {r['same_reports_batched_and_single']}.",
              f"- Overload: every refusal was a 503 with Retry-After ({r['overload']['statuses'].get('503', 0)} of "
              f"them), no other error, and every client still got its report "
              f"({r['overload']['answered']}/{r['overload']['requests']}); latencies count answered attempts only.",
              f"- Upload folders left behind: {len(r['leftover_upload_folders'])}."]
    return "\n".join(lines) + "\n"


def write_section(results_md: Path, section: str) -> None:
    """Put the section into results.md: replace an earlier one, else insert it before the closing line."""
    from brain3d.fsutil import atomic_write_text

    text = results_md.read_text(encoding="utf-8") if results_md.is_file() else "# brain3d benchmarks\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        end = nxt + 1 if nxt != -1 else text.find("\nEvery number above")
        end = end if end != -1 else len(text)
        text = text[:start] + section + ("\n" if not text[end:].startswith("\n") else "") + text[end:].lstrip("\n")
    else:
        closing = text.find("\nEvery number above")
        text = (text[:closing + 1] + section + "\n" + text[closing + 1:]) if closing != -1 else text + "\n" + section
    atomic_write_text(results_md, text)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small volumes (16x32x32) and few requests, for tests")
    ap.add_argument("--requests", type=int, default=None, help="requests per mode (default 200; --quick 24)")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 16; --quick 6)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default 32; --quick 8")
    ap.add_argument("--out", type=Path, default=BENCH, help="folder of serve.json and results.md (default bench/)")
    a = ap.parse_args(argv)
    r = run(a.quick, a.requests or (24 if a.quick else 200), a.clients or (6 if a.quick else 16), a.batch,
            a.max_new_tokens or (8 if a.quick else 32), overload_queue=2 if a.quick else 4)
    a.out.mkdir(parents=True, exist_ok=True)
    from brain3d.fsutil import atomic_write_json

    atomic_write_json(a.out / "serve.json", r)
    write_section(a.out / "results.md", markdown(r))
    print(r["quote"] + ("" if r["ok"] else "  (FAILED: see serve.json)"))
    return r


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
