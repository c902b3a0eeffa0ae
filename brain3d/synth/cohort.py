"""The synthetic cohort: subjects generated in parallel, stored with masks, reports and a split manifest.

Layout of OUT_DIR:
    manifest.jsonl                 one record per subject (brain3d.data.manifest), paths relative
    synth.json                     how the cohort was made (seed, counts, sequences, voxel size, labels)
    sub-0001/sub-0001_flair.nii.gz (and _t1, _t1ce, _t2 when asked) int16, assorted orientations/spacings
    sub-0001/sub-0001_mask.nii.gz  uint8 BraTS labels on the FLAIR grid: 1 necrosis / non-enhancing core,
                                   2 edema, 4 enhancing tumour (pathological subjects only)

Every subject is seeded from (seed, subject index) alone and the files are byte-stable, so the same seed
gives byte-identical output whatever the number of workers. Subject classes and sides are planned up
front: sides follow the paper's proportions (largest-remainder allocation) and are shuffled with the seed.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from brain3d.data.manifest import Record, assign_splits, write_manifest
from brain3d.errors import Brain3DError
from brain3d.fsutil import atomic_dir, atomic_write_json, stable_int
from brain3d.anatomy.atlas import load_atlas
from brain3d.synth.lesions import SIDE_WEIGHTS
from brain3d.synth.phantom import SEQUENCES, render, sample_subject
from brain3d.synth.reports import write_report
from brain3d.synth.storage import write_nifti_gz

MANIFEST = "manifest.jsonl"
INFO = "synth.json"
MASK_LABELS = {"1": "necrosis / non-enhancing tumour core", "2": "edema", "4": "enhancing tumour"}


@dataclass(frozen=True)
class CohortConfig:
    """What a cohort is made of; `voxel_mm` scales every storage grid (2 mm ≈ 100×118×98 voxels)."""

    n_pathological: int = 160
    n_healthy: int = 40
    seed: int = 42
    sequences: tuple[str, ...] = ("flair",)
    voxel_mm: float = 2.0
    compresslevel: int = 6

    def validate(self) -> None:
        bad = [s for s in self.sequences if s not in SEQUENCES]
        if bad or not self.sequences or len(set(self.sequences)) != len(self.sequences):
            raise Brain3DError(
                f"sequences must be distinct names from {', '.join(SEQUENCES)}; got {','.join(self.sequences)}"
            )
        if self.n_pathological < 0 or self.n_healthy < 0 or self.n_pathological + self.n_healthy == 0:
            raise Brain3DError("a cohort needs at least one subject and no negative counts")
        if not 0.5 <= self.voxel_mm <= 12.0:
            raise Brain3DError(f"voxel size must be between 0.5 and 12 mm, got {self.voxel_mm}")


def make_cohort(
    out_dir: str | Path,
    n_pathological: int = 160,
    n_healthy: int = 40,
    seed: int = 42,
    sequences: tuple[str, ...] | list[str] = ("flair",),
    workers: int = 1,
    progress: bool = True,
    voxel_mm: float = 2.0,
) -> Path:
    """Generate a cohort into `out_dir` (replaced whole on success) and return its manifest path."""
    cfg = CohortConfig(n_pathological, n_healthy, seed, tuple(sequences), float(voxel_mm))
    cfg.validate()
    out_dir = Path(out_dir)
    _check_replaceable(out_dir)
    plan = plan_classes(cfg.n_pathological, cfg.n_healthy, cfg.seed)
    with atomic_dir(out_dir) as tmp:
        records = _run(tmp, cfg, plan, max(1, int(workers)), progress)
        records = assign_splits(records, seed=cfg.seed)
        write_manifest(records, tmp / MANIFEST)
        info = {"generator": "brain3d synth", "format": 1, **asdict(cfg), "mask_labels": MASK_LABELS}
        atomic_write_json(tmp / INFO, info)
    return out_dir / MANIFEST


def plan_classes(n_pathological: int, n_healthy: int, seed: int) -> list[str | None]:
    """Per subject index: 'left' / 'right' / 'bilateral', or None for healthy; shuffled with the seed."""
    names = list(SIDE_WEIGHTS)
    w = np.array([SIDE_WEIGHTS[s] for s in names], dtype=np.float64)
    raw = n_pathological * w / w.sum()
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n_pathological - counts.sum()]:
        counts[i] += 1
    plan: list[str | None] = [s for s, c in zip(names, counts) for _ in range(c)] + [None] * n_healthy
    order = np.random.default_rng(stable_int("synth-plan", seed)).permutation(len(plan))
    return [plan[i] for i in order]


def generate_subject(out_dir: Path, cfg: CohortConfig, index: int, side: str | None) -> Record:
    """Sample, render and write one subject; returns its manifest record (paths absolute, no split)."""
    atlas = load_atlas(2)
    spec = sample_subject(cfg.seed, index, side, atlas, cfg.voxel_mm)
    out = render(spec, atlas, cfg.sequences)
    folder = out_dir / spec.subject_id
    images = {}
    for name in cfg.sequences:
        path = folder / f"{spec.subject_id}_{name}.nii.gz"
        write_nifti_gz(out.images[name], out.affine, path, cfg.compresslevel)
        images[name] = str(path)
    mask = None  # a healthy subject has no lesion, hence no mask file (an all-zero volume is no scan)
    if not spec.healthy:
        mask = write_nifti_gz(out.labels, out.affine, folder / f"{spec.subject_id}_mask.nii.gz", cfg.compresslevel)
    return Record(
        id=spec.subject_id,
        images=images,
        mask=str(mask) if mask else None,
        report=write_report(spec.truth, spec.healthy, spec.subject_id, cfg.seed),
        healthy=spec.healthy,
        truth=spec.truth,
    )


def _run(tmp: Path, cfg: CohortConfig, plan: list[str | None], workers: int, progress: bool) -> list[Record]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    records: dict[int, Record] = {}
    bar = Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress)
    with bar:
        task = bar.add_task("subjects", total=len(plan))
        if workers == 1:
            for i, side in enumerate(plan):
                records[i] = generate_subject(tmp, cfg, i, side)
                bar.advance(task)
        else:
            ctx = multiprocessing.get_context("spawn")  # no inherited threads or locks; workers load the atlas once
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = {pool.submit(generate_subject, tmp, cfg, i, side): i for i, side in enumerate(plan)}
                for fut in as_completed(futures):
                    records[futures[fut]] = fut.result()
                    bar.advance(task)
    return [records[i] for i in range(len(plan))]


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is not empty and not a synthetic cohort."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / INFO).is_file())):
        raise Brain3DError("exists and is not a synthetic cohort; choose a new or empty folder", out_dir)


__all__ = ["CohortConfig", "make_cohort", "plan_classes", "generate_subject", "MANIFEST"]
