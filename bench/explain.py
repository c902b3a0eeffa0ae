"""3D LIME: batched vs one-at-a-time perturbation, same seed and samples, measured in one run.

Brain3D on the tiny twin at the demo profile (32x64x64 volumes, 32 visual tokens); one synthetic head with a
lesion, 100 LIME samples over 20 supervoxels, the paper's target (−NLL of a report) and the side target. "One at
a time" is the reference code's loop: each perturbed volume through the encoder and the LM on its own (batch 1);
"batched" sends `batch` volumes per pass. Both run the same code (`brain3d.explain.explain_scan`, only `batch`
differs), are timed alternately, and must give the same weights (max abs difference reported). The encoder's
share of one sample is timed alone, because it bounds what batching can save on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved, set_threads, tiny_brain3d, tiny_models  # noqa: E402

REPORT = ("FLAIR hyperintense mass in the left frontal lobe with surrounding edema. Central necrosis is present "
          "and the rim enhances. Mild compression of the left lateral ventricle.")


def head(shape: tuple[int, int, int], mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(D, H, W) skull-stripped ellipsoid 'brain' with a bright left frontal blob; affine (d, h, w) → RAS mm."""
    d, h, w = np.indices(shape).astype(np.float64)
    c = (np.array(shape) - 1) / 2
    r = ((d - c[0]) / (0.45 * shape[0])) ** 2 + ((h - c[1]) / (0.45 * shape[1])) ** 2 + ((w - c[2]) / (0.4 * shape[2])) ** 2
    x = np.where(r < 1, 0.5 + 0.1 * np.cos(h / 3.0) * np.cos(w / 3.0), 0.0)
    blob = ((d - 0.6 * shape[0]) ** 2 + (h - 0.7 * shape[1]) ** 2 + (w - 0.3 * shape[2]) ** 2) < (0.12 * shape[1]) ** 2
    x[blob & (r < 1)] = 1.0
    affine = np.zeros((4, 4))
    affine[0, 2] = affine[1, 1] = affine[2, 0] = mm
    affine[:3, 3] = -(np.array([shape[2], shape[1], shape[0]]) - 1) / 2 * mm
    affine[3, 3] = 1.0
    return x.astype(np.float32), affine


def run(quick: bool = False, samples: int = 100, segments: int = 20, batch: int = 16, repeats: int | None = None,
        threads: int = 1, models: dict[str, Path] | None = None) -> dict:
    """Seconds per explanation at batch 1 and batch `batch`, their ratio and the weights' largest difference."""
    from brain3d.explain import ExplainConfig, explain_scan
    from brain3d.io import write_nifti
    from brain3d.reporting.inputs import ScanInput

    set_threads(threads)
    samples = 16 if quick else samples
    repeats = repeats or (1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-explain-") as tmp:
        model = tiny_brain3d(models or tiny_models(tmp), quick)
        shape = tuple(model.config.image_size)
        path = write_nifti(*head(shape, 192.0 / shape[1]), Path(tmp) / "head.nii.gz", stored_as=("L", "P", "S"))
        scan = ScanInput("head", [str(path)], str(path))
        results = {}
        for target in ("report", "side"):
            cfgs = {mode: ExplainConfig(target=target, samples=samples, segments=segments, batch=b, png=False)
                    for mode, b in (("one_at_a_time", 1), ("batched", batch))}
            out = {}

            def timed(mode: str):
                return lambda: out.__setitem__(mode, explain_scan(model, scan, cfgs[mode], report=REPORT))

            seconds = interleaved({m: timed(m) for m in cfgs}, repeats)
            diff = float(np.max(np.abs(out["batched"].weights - out["one_at_a_time"].weights)))
            results[target] = {
                "seconds_one_at_a_time": round(seconds["one_at_a_time"], 3),
                "seconds_batched": round(seconds["batched"], 3),
                "speedup": round(seconds["one_at_a_time"] / seconds["batched"], 2),
                "max_abs_weight_diff": diff, "max_abs_weight": float(np.max(np.abs(out["batched"].weights))),
                "supervoxels": len(out["batched"].weights), "r2": round(out["batched"].r2, 3),
            }
        x = torch.rand(batch, *(model.config.in_channels, *shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            model.encode_volume(x[:2])  # warm-up
            enc = interleaved({"one": lambda: [model.encode_volume(x[i:i + 1]) for i in range(batch)],
                               "batched": lambda: model.encode_volume(x)}, repeats)
    r = results["report"]
    return {
        "volume": [model.config.in_channels, *shape], "visual_tokens": model.config.num_tokens,
        "encoder_tokens": model.encoder.num_tokens, "samples": samples, "segments": segments, "batch": batch,
        "repeats": repeats, "threads": threads, "targets": results,
        "speedup": r["speedup"], "seconds_batched": r["seconds_batched"], "seconds_one_at_a_time": r["seconds_one_at_a_time"],
        "encoder_ms_per_volume_batch1": round(1000 * enc["one"] / batch, 2),
        "encoder_ms_per_volume_batched": round(1000 * enc["batched"] / batch, 2),
        "quote": (f"3D LIME, {samples} samples, {shape[0]}x{shape[1]}x{shape[2]} scan, tiny twin, CPU, {threads} "
                  f"thread: report target {r['seconds_one_at_a_time']:.2f} s one at a time vs "
                  f"{r['seconds_batched']:.2f} s batched ({r['speedup']:.2f}x), side target "
                  f"{results['side']['seconds_one_at_a_time']:.2f} vs {results['side']['seconds_batched']:.2f} s "
                  f"({results['side']['speedup']:.2f}x); weights equal to {max(v['max_abs_weight_diff'] for v in results.values()):.1e}. "
                  f"The encoder alone takes {1000 * enc['one'] / batch:.1f} ms per volume at batch 1 and "
                  f"{1000 * enc['batched'] / batch:.1f} ms batched ({model.encoder.num_tokens} tokens), "
                  f"{100 * samples * enc['batched'] / batch / r['seconds_batched']:.0f}% of a batched explanation: "
                  "what batching can save on a CPU is the per-pass overhead around it"),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = run(args.quick, samples=args.samples, batch=args.batch, repeats=args.repeats, threads=args.threads)
    print(json.dumps(result, indent=2) if args.json else result["quote"])
    print(f"(bench wall time {time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
