"""Synthetic cohort generation speed: subjects per second with W worker processes, measured in one run.

Generates a cohort at the default 2 mm grids (ready for the 64×128×128 model input) into a temporary
folder and prints subjects/second, the projected time for 200 subjects and the size on disk.
Goal: 200 subjects in under 3 minutes on 2 cores. Default run: 40 subjects; `--n 200` for the full goal.
The CPU time of the whole process tree is printed too: wall time on a shared machine says little alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain3d.synth.cohort import make_cohort  # noqa: E402


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="subjects (80%% pathological)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sequences", default="flair")
    ap.add_argument("--voxel-mm", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args(argv)
    n_path = round(args.n * 0.8)
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-synth-") as tmp:
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        manifest = make_cohort(Path(tmp) / "cohort", n_path, args.n - n_path, args.seed,
                               tuple(args.sequences.split(",")), args.workers, progress=False, voxel_mm=args.voxel_mm)
        wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
        size = sum(p.stat().st_size for p in manifest.parent.rglob("*") if p.is_file())
    result = {
        "subjects": args.n, "workers": args.workers, "sequences": args.sequences, "voxel_mm": args.voxel_mm,
        "wall_s": round(wall, 2), "subjects_per_s": round(args.n / wall, 3),
        "cpu_s_per_subject": round(cpu / args.n, 3),
        "projected_200_s": round(200 * wall / args.n, 1), "goal_200_s": 180, "mb_on_disk": round(size / 2**20, 1),
        "mb_per_subject": round(size / 2**20 / args.n, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.n} subjects ({args.sequences}, {args.voxel_mm} mm) with {args.workers} workers: "
              f"{wall:.1f} s wall → {result['subjects_per_s']} subjects/s; "
              f"{result['cpu_s_per_subject']} CPU s/subject")
        print(f"projected 200 subjects: {result['projected_200_s']} s (goal < 180 s); "
              f"{result['mb_on_disk']} MB on disk ({result['mb_per_subject']} MB/subject)")
    return result


if __name__ == "__main__":
    main()
