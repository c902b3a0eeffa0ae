"""Shared helpers of the benchmarks: thread setting, interleaved timing, the tiny twin at the demo profile.

Timings on this project's machines are taken on shared CPUs, so two variants that are compared are timed
alternately (A, B, A, B, ...) and summarised by their medians: a load change then hits both alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def set_threads(threads: int) -> None:
    """One intra-op thread by default: the CPU is shared, and the tiny models are faster that way."""
    torch.set_num_threads(threads)


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of each variant, timed alternately `repeats` times after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def tiny_models(folder: str | Path) -> dict[str, Path]:
    """The tiny twin's base-model folders under `folder` (written once, reused when already there)."""
    from brain3d.twin.tiny import make_tiny_models

    folder = Path(folder)
    if (folder / "language" / "config.json").is_file() and (folder / "vision" / "config.json").is_file():
        return {"vision": folder / "vision", "language": folder / "language"}
    return make_tiny_models(folder, seed=0)


def tiny_brain3d(models: dict[str, Path], quick: bool):
    """A Brain3D on the tiny twin with the demo profile's model settings (configs/tiny.yaml: 32x64x64
    volumes, K = 32 tokens); `quick` shrinks only the volume (16x32x32), never K."""
    from brain3d.model.brain3d import Brain3D
    from brain3d.train.config import load_config

    cfg = load_config("tiny").brain3d_config(models["vision"], models["language"])
    if quick:
        cfg = cfg.replace(image_size=(16, 32, 32))
    return Brain3D.build(cfg, device="cpu")


def machine() -> dict:
    """What the numbers were measured on (the load average matters on a shared machine)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in load] if load else None,
    }


def write_section(results_md: Path, section: str, heading: str | None = None) -> None:
    """Put the section into results.md: replace an earlier one (found by its `heading`, by default the section's
    first line), else insert it before the closing line."""
    from brain3d.fsutil import atomic_write_text

    heading = heading or section.splitlines()[0]
    text = results_md.read_text(encoding="utf-8") if results_md.is_file() else "# brain3d benchmarks\n"
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        end = nxt + 1 if nxt != -1 else text.find("\nEvery number above")
        end = end if end != -1 else len(text)
        text = text[:start] + section + ("\n" if not text[end:].startswith("\n") else "") + text[end:].lstrip("\n")
    else:
        closing = text.find("\nEvery number above")
        text = (text[:closing + 1] + section + "\n" + text[closing + 1:]) if closing != -1 else text + "\n" + section
    atomic_write_text(results_md, text)
