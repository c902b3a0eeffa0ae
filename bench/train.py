"""Phase-2 epoch time with the encoder-feature cache vs recomputing the frozen encoder every step.

One run, one process, the tiny profile (32x64x64 volumes, tiny SigLIP/Gemma-3 twin) on a small synthetic
cohort: the same phase-2A epochs are trained twice, once reading cached features and once running the
encoder on the volumes (both with every volume already preprocessed in memory, so only the encoder's cost
differs). Prints the epoch times, the one-off cost of filling the cache and the ratio. Goal: >= 3x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain3d.fsutil import atomic_write_json, read_jsonl  # noqa: E402
from brain3d.train.config import load_config  # noqa: E402
from brain3d.train.loop import run_phase  # noqa: E402
from brain3d.train.run import Trainer  # noqa: E402


def epoch_seconds(trainer: Trainer, model) -> tuple[list[float], dict | None]:
    """Train phase 2A for the configured epochs; per-epoch wall times from the metrics log."""
    data, cache = trainer.prepare_phase("2a", model)
    snapshot = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    run_phase(trainer.loop_context(), "2a", trainer.config.phases["2a"], model, data)
    model.load_trainable_state_dict(snapshot)  # both variants start from the same weights
    rows = read_jsonl(trainer.paths.metrics)
    return [r["seconds"] for r in rows if r["kind"] == "epoch" and r["epoch"] >= 0], cache


def run(n_pathological: int = 40, n_healthy: int = 10, epochs: int = 2, threads: int = 1,
        manifest: Path | None = None) -> dict:
    torch.set_num_threads(threads)
    from brain3d.twin.tiny import make_tiny_models
    from brain3d.synth.cohort import make_cohort

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if manifest is None:
            manifest = make_cohort(tmp / "cohort", n_pathological, n_healthy, seed=7, voxel_mm=4.0, progress=False)
        models = make_tiny_models(tmp / "models", seed=0)
        setup = time.perf_counter() - t0
        overrides = [f"phases.2a.epochs={epochs}", "phases.2a.patience=null", f"threads={threads}",
                     "diagnostics.enabled=false"]
        kw = dict(progress=False, vision_model=models["vision"], language_model=models["language"])
        cached = Trainer(load_config("tiny", overrides), manifest, tmp / "cached", **kw)
        recompute = Trainer(load_config("tiny", overrides + ["cache.enabled=false"]), manifest, tmp / "recompute", **kw)
        model = cached.load_model()
        for rec in cached.train_records + cached.val_records:  # preprocess once, for both variants
            recompute.volumes.load(rec)
        cached.volumes = recompute.volumes
        t_cache, _ = epoch_seconds(cached, model)
        t_recompute, _ = epoch_seconds(recompute, model)
        cache_info = json.loads(json.dumps(cached.prepare_phase("2a", model)[1]))
        # fill cost: encode every input once into a fresh cache folder
        fill_trainer = Trainer(load_config("tiny", overrides + [f"cache.dir={tmp / 'fresh-cache'}"]), manifest,
                               tmp / "fill", **kw)
        fill_trainer.volumes = recompute.volumes
        t1 = time.perf_counter()
        _, fresh = fill_trainer.prepare_phase("2a", model)
        fill = time.perf_counter() - t1
    cached_s, recompute_s = statistics.median(t_cache), statistics.median(t_recompute)
    return {
        "profile": "tiny", "threads": threads, "train_subjects": len(cached.train_records),
        "val_subjects": len(cached.val_records), "cache_entries": cache_info["entries"],
        "epoch_seconds_cached": round(cached_s, 3), "epoch_seconds_recompute": round(recompute_s, 3),
        "epochs_measured": epochs, "cache_fill_seconds": round(fill, 3), "entries_filled": fresh["computed_here"],
        "speedup": round(recompute_s / cached_s, 2), "setup_seconds": round(setup, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pathological", type=int, default=40)
    ap.add_argument("--healthy", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--manifest", type=Path, default=None, help="Use this manifest instead of a fresh cohort.")
    ap.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    a = ap.parse_args()
    res = run(a.pathological, a.healthy, a.epochs, a.threads, a.manifest)
    print(json.dumps(res, indent=2))
    print(f"phase-2A epoch: {res['epoch_seconds_recompute']:.2f} s recomputing the encoder vs "
          f"{res['epoch_seconds_cached']:.2f} s from the feature cache -> {res['speedup']:.1f}x faster "
          f"(cache filled once in {res['cache_fill_seconds']:.2f} s for {res['entries_filled']} inputs)")
    if a.json:
        atomic_write_json(a.json, res)


if __name__ == "__main__":
    main()
