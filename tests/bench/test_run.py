"""bench/run.py --quick runs every benchmark in one process and writes valid results.json / results.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("preprocess", "synth", "encoder", "feature_cache", "generation", "prefill", "explain")


def _is_ratio(speedup: float, slow: float, fast: float) -> bool:
    """Whether `speedup` (rounded to 0.01) is slow / fast, both timings rounded to 1 ms: the slow path over the fast
    one, not inverted."""
    tolerance = (slow / fast) * (0.0005 / slow + 0.0005 / fast) + 0.005
    return abs(speedup - slow / fast) <= tolerance


def test_quick_run_writes_every_benchmark(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert list(report["benchmarks"]) == list(BENCHMARKS)
    failed = {n: b.get("error") for n, b in report["benchmarks"].items() if not b["ok"]}
    assert not failed
    r = {n: b["result"] for n, b in report["benchmarks"].items()}

    pre = r["preprocess"]
    assert pre["brain3d_ms"] > 0 and pre["monai_ms"] > 0 and pre["max_abs_diff"] < 1e-4
    assert pre["speedup"] == pytest.approx(pre["monai_ms"] / pre["brain3d_ms"])  # MONAI time over ours, not inverted
    assert r["encoder"]["parity"]["tokens"] == 5265 and r["encoder"]["default"]["tokens"] == 2592  # FACTS.md
    fc = r["feature_cache"]
    assert fc["entries_filled"] > 0 and fc["epoch_seconds_cached"] > 0
    assert _is_ratio(fc["speedup"], fc["epoch_seconds_recompute"], fc["epoch_seconds_cached"])
    assert r["synth"]["subjects"] == 2 and r["synth"]["subjects_per_s"] > 0

    gen = r["generation"]
    assert gen["batch"] == 8 and gen["reports_per_s_batch1"] > 0 and gen["reports_per_s_batch8"] > 0
    assert abs(gen["speedup"] - gen["reports_per_s_batch8"] / gen["reports_per_s_batch1"]) < 0.02
    assert "reports/s at batch 1" in gen["quote"] and "at batch 8" in gen["quote"]

    pre = r["prefill"]
    assert pre["brain3d_visual_tokens"] == 32 and pre["tiny_tokens_per_image"] == 16  # tiny twin's config
    assert pre["brain3d_sequence"] == 32 + pre["prompt_tokens"]
    assert pre["slices_sequence"] == 64 * 16 + pre["prompt_tokens"]
    assert pre["real_models"]["slices_visual_tokens"] == 16384 and pre["real_models"]["visual_token_ratio"] == 512
    assert pre["brain3d_prefill_ms"] > 0 and pre["slices_prefill_ms"] > 0

    ex = r["explain"]
    assert set(ex["targets"]) == {"report", "side"} and ex["samples"] == 16
    for t in ex["targets"].values():
        assert t["max_abs_weight_diff"] <= 1e-6 * max(1.0, t["max_abs_weight"]) and t["seconds_batched"] > 0
        assert _is_ratio(t["speedup"], t["seconds_one_at_a_time"], t["seconds_batched"])
    assert "one at a time vs" in ex["quote"]

    md = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "Quick smoke run" in md
    for name in BENCHMARKS:
        assert f"| {name} |" in md
    assert "## Laterality study" in md and "bench/laterality.py" in md
