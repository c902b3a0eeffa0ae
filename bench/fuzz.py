"""Soak the readers, `brain3d report` and `POST /v1/reports` with scans whose headers lie: the fuzz tests' strategies
and checks (tests/hostile.py) with a much larger example budget and a seed of your choice.

Each (target, kind) runs in a process of its own, so that a reader which crashes or hangs the process is reported
(with the example it was reading) instead of ending the soak. Writes bench/fuzz.json and its section of
bench/results.md (bench/run.py keeps that section on a full rerun): examples run, failures (hypothesis' shrunk,
minimal example) and the outcome table (records / which error sentence / status).

    python bench/fuzz.py                      # readers 1500, report 150, service 200 examples per kind
    python bench/fuzz.py --readers 200 --serve 40 --report 20 --seed 7
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine, write_section  # noqa: E402

BENCH = Path(__file__).resolve().parent
SECTION = "## Hostile input (fuzz soak)"
TARGETS = {"readers": ["nifti1", "nifti2", "nrrd", "mha", "dicom"], "report": ["nifti1", "nifti2", "nrrd", "mha", "dicom"],
           "serve": ["nifti1", "nifti2", "nrrd", "mha", "dicom", "zip"]}
TOP = 12  # outcome rows per target in results.md
LABELS = {"readers": "library reader", "report": "brain3d report", "serve": "POST /v1/reports"}


# ---- one (target, kind) in its own process -----------------------------------------------------------------------

def worker(target: str, kind: str, examples: int, seed: int, checkpoint: str | None, out: Path) -> None:
    """Run the examples; write {examples, outcomes, failure} to `out`; the example being read is in out + '.last'."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from tests.hostile import KINDS, Outcomes, read_outcome, report_outcome, serve_outcome

    outcomes, count = Outcomes(), [0]
    last = out.with_suffix(".last")
    with tempfile.TemporaryDirectory(prefix="brain3d-soak-") as root:
        root = Path(root)
        run = _target(target, checkpoint, root)

        @hseed(seed)
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False, print_blob=True,
                  suppress_health_check=list(HealthCheck))
        @given(KINDS[kind]())
        def check(h):
            count[0] += 1
            last.write_text(repr(h))
            with tempfile.TemporaryDirectory(dir=root) as folder:
                if target == "readers":
                    outcome = read_outcome(h, Path(folder))
                elif target == "report":
                    outcome = report_outcome(run, h, Path(folder))
                else:
                    client, app, _ = run
                    outcome = serve_outcome(client, app, h, root)
            outcomes.add(LABELS[target], kind, outcome)

        failure = None
        try:
            check()
        except Exception as exc:  # hypothesis re-raises the shrunk, minimal failing example's error
            failure = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}", "example": last.read_text()}
        finally:
            if target == "serve":
                run[2].__exit__(None, None, None)
    out.write_text(json.dumps({"examples": count[0], "outcomes": outcomes.table(), "failure": failure}))


def _target(target: str, checkpoint: str | None, root: Path):
    if target == "readers":
        return None
    if target == "report":
        import io
        from contextlib import redirect_stderr, redirect_stdout

        import brain3d.commands.report as report
        from brain3d.cli import main
        from brain3d.eval.evaluate import EvaluateOptions

        loaded = report.load_with_sequences(Path(checkpoint), EvaluateOptions(device="cpu"), None)
        report.load_with_sequences = lambda *a, **k: loaded

        def run(args):
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = main(["report", *args, "-c", checkpoint, "--json", "--device", "cpu", "--max-new-tokens", "4"])
            return code, out.getvalue(), err.getvalue()
        return run
    from fastapi.testclient import TestClient

    from brain3d.serve.app import create_app
    from brain3d.serve.config import ServeConfig

    app = create_app(ServeConfig(checkpoint=Path(checkpoint), device="cpu", max_new_tokens=4, max_upload_mb=2,
                                 batch=4, queue_size=6, max_wait_ms=5, max_zip_members=16, tmp_root=root / "private"))
    ctx = TestClient(app)
    client = ctx.__enter__()
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not become ready"
        time.sleep(0.05)
    return client, app, ctx


# ---- the soak ------------------------------------------------------------------------------------------------------

def run(budget: dict[str, int], seed: int) -> dict:
    """Every (target, kind) in its own process; returns what went into fuzz.json."""
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="brain3d-soak-ckpt-") as tmp:
        tmp = Path(tmp)
        checkpoint = _checkpoint(tmp) if budget.get("report") or budget.get("serve") else None
        for target, kinds in TARGETS.items():
            if not budget.get(target):
                continue
            for kind in kinds:
                out = tmp / f"{target}-{kind}.json"
                env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", target, kind, str(budget[target]),
                       str(seed), str(checkpoint or ""), str(out)]
                t1 = time.perf_counter()
                done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
                row = {"target": LABELS[target], "kind": kind, "seconds": round(time.perf_counter() - t1, 1)}
                if out.is_file():
                    row.update(json.loads(out.read_text()))
                else:  # the process died: a crash (signal) or a hang the worker could not report
                    last = out.with_suffix(".last")
                    row.update(examples=None, outcomes=[], failure={
                        "error": f"the process ended with code {done.returncode} ({done.stderr.strip()[-300:]})",
                        "example": last.read_text() if last.is_file() else None})
                print(f"[fuzz] {target:8s} {kind:7s} {row.get('examples')} examples, "
                      f"{'FAILED' if row['failure'] else 'ok'} ({row['seconds']} s)", flush=True)
                results.append(row)
    return {"seed": seed, "budget": budget, "results": results, "wall_s": round(time.perf_counter() - t0, 1),
            "ok": not any(r["failure"] for r in results), "machine": machine()}


def _checkpoint(tmp: Path) -> str:
    """An untrained tiny twin saved as a checkpoint (16x32x32 volumes): what is tested is input handling."""
    from common import tiny_brain3d, tiny_models

    return str(tiny_brain3d(tiny_models(tmp / "tiny"), quick=True).save_pretrained(tmp / "ckpt"))


def markdown(r: dict) -> str:
    """The results.md section: examples and failures per target and kind, then the outcome table."""
    b = r["budget"]
    lines = [SECTION, "",
             f"`bench/fuzz.py --readers {b.get('readers', 0)} --report {b.get('report', 0)} --serve {b.get('serve', 0)} "
             f"--seed {r['seed']}`: the fuzz tests' strategies and checks (tests/hostile.py: NIfTI-1/2, NRRD and "
             "MetaImage headers that lie, DICOM series with missing, duplicated, shuffled or tilted slices and odd "
             "transfer syntaxes, zips that nest, escape, link or bomb), each target and kind in its own process, "
             f"{r['wall_s']} s in all on a shared 2-core machine. An example passes when it ends in a record or the "
             "documented one-sentence error (with its status), leaves no file behind, does not hang and does not "
             "allocate far beyond the file.", "",
             "| target | kind | examples | failures | records | errors |", "|---|---|---|---|---|---|"]
    for row in r["results"]:
        records = sum(o["n"] for o in row["outcomes"] if o["outcome"].startswith("record"))
        errors = sum(o["n"] for o in row["outcomes"]) - records
        fail = "none" if not row["failure"] else f"**{row['failure']['error'][:120]}**"
        lines.append(f"| {row['target']} | {row['kind']} | {row['examples']} | {fail} | {records} | {errors} |")
    lines += ["", f"Outcome table, the {TOP} most frequent outcomes per target (numbers in sentences shown as #, "
              "library detail as (…); every outcome is in fuzz.json):", "",
              "| target | outcome | status | examples | kinds |", "|---|---|---|---|---|"]
    merged: dict[tuple[str, str], dict] = {}
    for row in r["results"]:
        for o in row["outcomes"]:
            text, status = _status(o["outcome"])
            m = merged.setdefault((row["target"], text), {"n": 0, "kinds": set(), "status": status})
            m["n"] += o["n"]
            m["kinds"].add(row["kind"])
    shown: dict[str, int] = {}
    rest: dict[str, list[int]] = {}
    for (target, text), m in sorted(merged.items(), key=lambda kv: (kv[0][0], -kv[1]["n"])):
        if shown.get(target, 0) >= TOP:
            rest.setdefault(target, []).append(m["n"])
            continue
        shown[target] = shown.get(target, 0) + 1
        status = m["status"] if m["status"] != "—" else ("Volume" if text == "record" else "VolumeError")
        lines.append(f"| {target} | {text.replace('|', '/')} | {status} | {m['n']} | {', '.join(sorted(m['kinds']))} |")
    for target, counts in sorted(rest.items()):
        lines.append(f"| {target} | {len(counts)} other error sentences | | {sum(counts)} | |")
    return "\n".join(lines) + "\n"


def _status(outcome: str) -> tuple[str, str]:
    """('record' or the sentence, '200' / 'exit 3' / '—') from an outcome class."""
    if outcome.endswith(")") and " (" in outcome:
        text, _, status = outcome.rpartition(" (")
        if status[:-1].isdigit() or status.startswith("exit"):
            return text, status[:-1]
    return outcome, "—"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        target, kind, n, seed, ckpt, out = argv[1:7]
        worker(target, kind, int(n), int(seed), ckpt or None, Path(out))
        return {}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=1500, help="examples per kind through the library readers")
    ap.add_argument("--report", type=int, default=150, help="examples per kind through `brain3d report`")
    ap.add_argument("--serve", type=int, default=200, help="examples per kind through POST /v1/reports")
    ap.add_argument("--seed", type=int, default=27)
    ap.add_argument("--out", type=Path, default=BENCH, help="folder of fuzz.json and results.md (default bench/)")
    a = ap.parse_args(argv)
    r = run({"readers": a.readers, "report": a.report, "serve": a.serve}, a.seed)
    from brain3d.fsutil import atomic_write_json

    atomic_write_json(a.out / "fuzz.json", r)
    write_section(a.out / "results.md", markdown(r))
    total = sum(row["examples"] or 0 for row in r["results"])
    print(f"{total} examples, {sum(bool(row['failure']) for row in r['results'])} failing (target, kind) pairs"
          + ("" if r["ok"] else ": see fuzz.json"))
    return r


if __name__ == "__main__":
    result = main()
    sys.exit(0 if not result or result["ok"] else 1)
