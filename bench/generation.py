"""Batched vs one-by-one report generation: reports per second at batch 1 and batch B, measured in one run.

Brain3D on the tiny twin at the demo profile (32x64x64 volumes, 32 visual tokens), greedy decoding. Every
report is forced to exactly N new tokens (min = max), so both modes do the same work and the ratio is the
throughput gain of batching alone, not an artefact of different stopping points. The two modes are timed
alternately on the same B volumes. `brain3d evaluate` generates in batches; this is why.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved, set_threads, tiny_brain3d, tiny_models  # noqa: E402


def run(quick: bool = False, batch: int = 8, max_new_tokens: int | None = None, repeats: int | None = None,
        threads: int = 1, models: dict[str, Path] | None = None) -> dict:
    """{"reports_per_s_batch1", "reports_per_s_batchB", "speedup", ...} for B = `batch`."""
    set_threads(threads)
    n_new = max_new_tokens or (8 if quick else 96)
    repeats = repeats or (1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-gen-") as tmp:
        model = tiny_brain3d(models or tiny_models(tmp), quick)
        c, (d, h, w) = model.config.in_channels, model.config.image_size
        volumes = torch.rand(batch, c, d, h, w, generator=torch.Generator().manual_seed(0))  # (B, C, D, H, W)

        def generate(x: torch.Tensor) -> list[str]:
            return model.generate(volumes=x, profile="greedy", max_new_tokens=n_new, min_new_tokens=n_new)

        def one_by_one() -> None:
            for i in range(batch):
                generate(volumes[i:i + 1])

        seconds = interleaved({"batch1": one_by_one, "batched": lambda: generate(volumes)}, repeats)
    rps1, rpsb = round(batch / seconds["batch1"], 2), round(batch / seconds["batched"], 2)
    return {
        "batch": batch, "new_tokens_per_report": n_new, "repeats": repeats, "threads": threads,
        "volume": [c, d, h, w], "visual_tokens": model.config.num_tokens, "decoding": "greedy",
        "seconds_one_by_one": round(seconds["batch1"], 3), "seconds_batched": round(seconds["batched"], 3),
        "reports_per_s_batch1": rps1, f"reports_per_s_batch{batch}": rpsb,
        "speedup": round(seconds["batch1"] / seconds["batched"], 2),
        "quote": f"{rps1} reports/s at batch 1 vs {rpsb} reports/s at batch {batch} "
                 f"({seconds['batch1'] / seconds['batched']:.1f}x; tiny twin, {n_new} new tokens each, CPU, {threads} thread)",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    a = ap.parse_args(argv)
    r = run(a.quick, a.batch, a.max_new_tokens, a.repeats, a.threads)
    print(json.dumps(r) if a.json else r["quote"])
    return r


if __name__ == "__main__":
    main()
