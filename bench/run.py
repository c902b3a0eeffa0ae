"""Run every brain3d benchmark in one process and write bench/results.md + bench/results.json.

Benchmarks (each compares two ways of doing the same work, measured in this one run):
  preprocess     brain3d preprocessing vs a MONAI pipeline doing the same steps (bench/preprocess.py)
  synth          synthetic cohort speed vs the goal of 200 subjects in 3 minutes (bench/synth.py)
  encoder        encoder tokens and time: reference stem (depth stride 1) vs brain3d's default (bench/model.py)
  feature_cache  phase-2 epoch from cached encoder features vs recomputing the encoder (bench/train.py)
  generation     batched vs one-by-one report generation (bench/generation.py)
  prefill        LM prefill of 32 visual tokens vs a 64-slice 2D approach (bench/prefill.py)
  explain        3D LIME: batched vs one-at-a-time perturbation, same seed and samples (bench/explain.py)
The serving load test (bench/serve.py: `brain3d serve` processes) and the fuzz soak (bench/fuzz.py) run on their own;
their serve.json and fuzz.json are reported here.
The laterality study (bench/laterality.py) takes long: `--laterality` runs it here; `--laterality-json F`
reads a finished study's laterality.json into the report instead.
`--quick` is a tiny smoke version (seconds per benchmark); its numbers only show that everything runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import tempfile
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import machine, set_threads, tiny_models  # noqa: E402

from brain3d.fsutil import atomic_write_json, atomic_write_text  # noqa: E402


def _module(name: str):
    """bench/<name>.py as a module of its own name (bench/ is a folder of scripts, not a package)."""
    key = f"brain3d_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod  # registered before running it: dataclasses look their module up
        spec.loader.exec_module(mod)
    return sys.modules[key]


# ----------------------------------------------------------------------------------------------- benchmarks
# Each: (quick, shared tiny-model folders) -> result dict of the benchmark script.
def preprocess(quick: bool, models: dict) -> dict:
    with warnings.catch_warnings():  # MONAI's own deprecation notice about Orientation's labels argument
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"monai\.")
        return _module("preprocess").run(n=1, repeats=1) if quick else _module("preprocess").run(n=4, repeats=2)


def synth(quick: bool, models: dict) -> dict:
    argv = ["--n", "2", "--voxel-mm", "4", "--workers", "1"] if quick else ["--n", "40", "--workers", "2"]
    with contextlib.redirect_stdout(io.StringIO()):  # the script prints its own summary line
        return _module("synth").main(argv + ["--json"])


def encoder(quick: bool, models: dict) -> dict:
    return _module("model").run(repeats=1, hidden=64, layers=1) if quick else _module("model").run(repeats=3)


def feature_cache(quick: bool, models: dict) -> dict:
    if quick:
        return _module("train").run(n_pathological=8, n_healthy=2, epochs=1)
    return _module("train").run(n_pathological=40, n_healthy=10, epochs=2)


def generation(quick: bool, models: dict) -> dict:
    return _module("generation").run(quick, models=models)


def prefill(quick: bool, models: dict) -> dict:
    return _module("prefill").run(quick, models=models)


def explain(quick: bool, models: dict) -> dict:
    return _module("explain").run(quick, models=models)


BENCHMARKS: dict[str, Callable[[bool, dict], dict]] = {
    "preprocess": preprocess, "synth": synth, "encoder": encoder, "feature_cache": feature_cache,
    "generation": generation, "prefill": prefill, "explain": explain,
}


# ----------------------------------------------------------------------------------------------- report rows
def _x(v: float) -> str:
    return f"{v:.2f}x"


def row(name: str, r: dict) -> tuple[str, str, str, str]:
    """(what is compared, measured, ratio, goal) of one benchmark's result, for the Markdown table."""
    if name == "preprocess":
        return ("brain3d vs MONAI: RAS, p1/p99, resize 240x240x155 -> 64x128x128",
                f"{r['brain3d_ms']:.0f} ms vs {r['monai_ms']:.0f} ms per volume; max abs diff {r['max_abs_diff']:.1e}",
                _x(r["speedup"]) + " faster", ">= 1.3x, diff <= 1e-4")
    if name == "synth":
        return (f"synthetic cohort ({r['workers']} worker processes, {r['voxel_mm']} mm grid)",
                f"{r['subjects']} subjects in {r['wall_s']:.1f} s ({r['subjects_per_s']:.2f}/s, "
                f"{r['cpu_s_per_subject']:.2f} CPU s each); 200 projected {r['projected_200_s']:.0f} s",
                _x(r["goal_200_s"] / r["projected_200_s"]) + " the goal pace", "200 subjects < 180 s (>= 1x)")
    if name == "encoder":
        p, d = r["parity"], r["default"]
        return (f"encoder stem: reference (depth stride 1) vs default (stride 2), hidden {r['hidden']}, "
                f"{r['layers']} layers",
                f"{p['tokens']} vs {d['tokens']} tokens; {p['forward_s']:.2f} s vs {d['forward_s']:.2f} s per volume",
                f"{_x(r['token_ratio'])} tokens, {_x(r['speedup'])} faster", "~2x tokens, > 2x faster")
    if name == "feature_cache":
        return ("phase-2A epoch: recomputing the frozen encoder vs reading cached features",
                f"{r['epoch_seconds_recompute']:.2f} s vs {r['epoch_seconds_cached']:.2f} s per epoch "
                f"({r['train_subjects']} train subjects); cache filled in {r['cache_fill_seconds']:.2f} s",
                _x(r["speedup"]) + " faster", ">= 3x")
    if name == "generation":
        b = r["batch"]
        return (f"report generation: one by one vs batch {b} ({r['new_tokens_per_report']} new tokens each)",
                f"{r['reports_per_s_batch1']:.2f} vs {r[f'reports_per_s_batch{b}']:.2f} reports/s",
                _x(r["speedup"]) + " more reports/s", "batched faster")
    if name == "prefill":
        return (f"LM prefill: {r['brain3d_visual_tokens']} visual tokens vs {r['slices']} slices x "
                f"{r['tiny_tokens_per_image']} (tiny Gemma-3)",
                f"{r['brain3d_sequence']} vs {r['slices_sequence']} tokens; {r['brain3d_prefill_ms']:.1f} ms vs "
                f"{r['slices_prefill_ms']:.1f} ms. Real MedGemma: {r['real_models']['slices_visual_tokens']:,} vs "
                f"{r['real_models']['brain3d_visual_tokens']} image tokens",
                f"{_x(r['token_ratio'])} tokens, {_x(r['speedup'])} faster", "fewer tokens, faster")
    if name == "explain":
        side = r["targets"]["side"]
        c, d, h, w = r["volume"]
        diff = max(t["max_abs_weight_diff"] for t in r["targets"].values())
        return (f"3D LIME, {r['samples']} samples x {r['segments']} supervoxels on one {d}x{h}x{w} scan: one at a "
                f"time vs batch {r['batch']}",
                f"report target {r['seconds_one_at_a_time']:.2f} s vs {r['seconds_batched']:.2f} s, side target "
                f"{side['seconds_one_at_a_time']:.2f} s vs {side['seconds_batched']:.2f} s; weights equal to "
                f"{diff:.0e}; encoder {r['encoder_ms_per_volume_batch1']:.1f} vs "
                f"{r['encoder_ms_per_volume_batched']:.1f} ms per volume",
                _x(r["speedup"]) + " faster", ">= 3x, identical weights")
    raise KeyError(name)


def markdown(report: dict) -> str:
    m = report["machine_start"]
    lines = [
        "# brain3d benchmarks", "",
        f"Measured in one run by `bench/run.py{' --quick' if report['quick'] else ''}` on {report['measured_at']} "
        f"({m['cpu_count']} CPUs shared, load average {m['load_average']} at start, "
        f"{report['machine_end']['load_average']} at the end; torch {m['torch']}, Python {m['python']}). "
        "Paired variants are timed alternately, medians reported; ratios are within this run.",
    ]
    if report["quick"]:
        lines += ["", "**Quick smoke run**: tiny sizes; the numbers only show that every benchmark runs."]
    lines += ["", "| benchmark | compared | measured | ratio | goal |", "|---|---|---|---|---|"]
    for name, b in report["benchmarks"].items():
        if b["ok"]:
            what, measured, ratio, goal = row(name, b["result"])
            lines.append(f"| {name} | {what} | {measured} | **{ratio}** | {goal} |")
        else:
            lines.append(f"| {name} | failed | {b['error']} | — | — |")
    quotes = [b["result"]["quote"] for b in report["benchmarks"].values() if b["ok"] and "quote" in b["result"]]
    pre = report["benchmarks"].get("prefill")
    if pre and pre["ok"]:
        quotes.append(pre["result"]["real_models"]["note"] + ".")
    if quotes:
        lines += ["", *(f"- {q}" for q in quotes)]
    lines += ["", "## Laterality study", ""]
    lat = report.get("laterality")
    if lat:
        lat_md = _module("laterality").markdown(lat)
        lines += [f"From `{report.get('laterality_source')}`.", "", lat_md.rstrip()]
    else:
        lines += ["Not part of this run (it trains six models). Run it with "
                  "`.venv/bin/python bench/laterality.py --reuse demo_out` (after `brain3d demo`), then "
                  "`.venv/bin/python bench/run.py --laterality-json demo_out/laterality/laterality.json`."]
    lines += ["", "## Oracle grounding harness (language half on planted features)", ""]
    grounding = report.get("grounding")
    if grounding:
        lines += ["Phases 2A/2B of each configuration trained on planted features (`bench/grounding.py`, "
                  "`brain3d.eval.grounding`); held-out planted subjects, greedy decoding. hemisphere = the side is "
                  "only in *which* tokens are bright; regional = lobe boxes and finding channels too; global = the "
                  "side in every token's content; presence = no side cue at all (side columns at chance by design).",
                  "", _module("grounding").markdown(grounding).rstrip()]
    else:
        lines += ["Not part of this run: `.venv/bin/python bench/grounding.py` writes bench/grounding/grounding.json."]
    lines += [""]
    for name, module, render, heading, command in KEPT:  # benches that run on their own; their sections are kept
        path = BENCH / name
        if path.is_file():
            lines += [getattr(_module(module), render)(json.loads(path.read_text(encoding="utf-8"))).rstrip(), ""]
        else:
            lines += [heading, "", f"Not part of this run: {command} writes bench/{name} and this section.", ""]
    lines += ["Every number above, with its settings, is in results.json (serving: serve.json; mutation: mutation.json; "
              "fuzz soak: fuzz.json; archive scale: archive.json)."]
    return "\n".join(lines) + "\n"


# Benches that run on their own (server processes, mutation runs, soaks, 1,000-scan runs): (json, module, its
# markdown function, section heading, command). A full rerun of this file keeps their sections.
KEPT = [
    ("serve.json", "serve", "markdown", "## Serving under load", "`.venv/bin/python bench/serve.py`"),
    ("mutation.json", "mutants", "mutation_markdown", "## Mutation testing (laterality)",
     "`.venv/bin/python bench/mutants.py` and `bench/mutants.py --mutmut`"),
    ("fuzz.json", "fuzz", "markdown", "## Hostile input (fuzz soak)", "`.venv/bin/python bench/fuzz.py`"),
    ("archive.json", "archive", "markdown", "## Reports at archive scale", "`.venv/bin/python bench/archive.py`"),
]


# ----------------------------------------------------------------------------------------------- driver
def run(out: Path, quick: bool = False, only: list[str] | None = None, laterality: bool = False,
        laterality_json: Path | None = None, reuse: Path | None = None, log: Callable[[str], None] = print) -> dict:
    names = only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    set_threads(1)
    report: dict = {"quick": quick, "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine_start": machine(), "benchmarks": {}}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-") as tmp:
        models = tiny_models(Path(tmp) / "tiny-models")  # shared by generation and prefill
        for name in names:
            log(f"[bench] {name} …")
            t0 = time.perf_counter()
            try:
                entry = {"ok": True, "result": BENCHMARKS[name](quick, models)}
            except Exception as exc:  # a failing benchmark is reported, and the others still run
                traceback.print_exc()
                entry = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                set_threads(1)  # a benchmark may change it (preprocess uses 2)
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            report["benchmarks"][name] = entry
            log(f"[bench] {name}: " + (" | ".join(row(name, entry["result"])[1:3]) if entry["ok"] else entry["error"])
                + f" ({entry['seconds']} s)")
    if laterality:
        study = _module("laterality")
        lat_out = study.default_out(quick)
        report["laterality"] = study.run(lat_out, quick=quick, reuse=reuse, log=log)
        report["laterality_source"] = str(lat_out / "laterality.json")
    elif laterality_json is not None:
        report["laterality"] = json.loads(Path(laterality_json).read_text(encoding="utf-8"))
        report["laterality_source"] = str(laterality_json)
    grounding = BENCH / "grounding" / "grounding.json"
    if grounding.is_file():  # the oracle harness runs on its own (bench/grounding.py); its table is reported here
        report["grounding"] = json.loads(grounding.read_text(encoding="utf-8"))
    report["machine_end"] = machine()
    report["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", report)
    atomic_write_text(out / "results.md", markdown(report))
    log(f"[bench] wrote {out / 'results.md'} and results.json ({report['wall_seconds']} s)")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=BENCH, help="folder for results.md / results.json (default bench/)")
    ap.add_argument("--quick", action="store_true", help="tiny smoke version (for CI)")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ", ".join(BENCHMARKS))
    ap.add_argument("--laterality", action="store_true", help="also run the laterality study (long)")
    ap.add_argument("--reuse", type=Path, default=None, help="with --laterality: a finished demo folder to reuse")
    ap.add_argument("--laterality-json", type=Path, default=None, help="a finished study's laterality.json")
    a = ap.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()] if a.only else None
    report = run(a.out, a.quick, only, a.laterality, a.laterality_json, a.reuse,
                 log=lambda s: print(s, file=sys.stderr, flush=True))
    return 0 if all(b["ok"] for b in report["benchmarks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
