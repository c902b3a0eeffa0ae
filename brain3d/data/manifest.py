"""The manifest: one JSONL file, one record per subject, consumed by every command.

Schema (one JSON object per line):
    id        str, unique
    split     "train" | "val" | "test"
    images    {sequence: path}  (paths relative to the manifest's folder or absolute)
    mask      path | null       (lesion mask, optional)
    report    str               (reference report)
    healthy   bool
    truth     {side: "left"|"right"|"bilateral"|null, lobes: [str], findings: {name: bool},
               volumes_ml: {label: float}} | null
    source    str | null        (where the subject came from: "brats", "healthy", ...; null for phantoms)

This module alone reads, validates and writes manifests and makes splits.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from brain3d.errors import ManifestError
from brain3d.fsutil import atomic_write_text, stable_int

Side = Literal["left", "right", "bilateral"]
SPLITS = ("train", "val", "test")


class Truth(BaseModel):
    side: Side | None = None
    lobes: list[str] = Field(default_factory=list)
    findings: dict[str, bool] = Field(default_factory=dict)
    volumes_ml: dict[str, float] = Field(default_factory=dict)  # per lesion label, measured on the mask


class Record(BaseModel):
    id: str
    split: Literal["train", "val", "test"] | None = None
    images: dict[str, str]
    mask: str | None = None
    report: str = ""
    healthy: bool = False
    truth: Truth | None = None
    source: str | None = None

    @field_validator("images")
    @classmethod
    def _non_empty(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("images must name at least one sequence")
        return v

    def image_paths(self, sequences: Iterable[str] | None = None) -> list[str]:
        """Paths of the requested sequences in order (all, in stored order, when None)."""
        if sequences is None:
            return list(self.images.values())
        missing = [s for s in sequences if s not in self.images]
        if missing:
            raise ManifestError(f"subject {self.id} has no sequence {missing[0]!r} (has {sorted(self.images)})")
        return [self.images[s] for s in sequences]

    @property
    def stratum(self) -> str:
        """Class-and-side label used to stratify splits."""
        if self.healthy:
            return "healthy"
        return (self.truth.side if self.truth and self.truth.side else "undefined")


def read_manifest(path: str | Path, split: str | None = None, resolve: bool = True) -> list[Record]:
    """Read and validate a manifest; relative paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError("manifest file not found", path)
    records: list[Record] = []
    seen: set[str] = set()
    base = path.parent.resolve()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = Record.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ManifestError(f"line {lineno} is not a valid record ({first})", path) from None
            if rec.id in seen:
                raise ManifestError(f"line {lineno} repeats subject id {rec.id!r}", path)
            seen.add(rec.id)
            if resolve:
                rec = _resolved(rec, base)
            records.append(rec)
    if split is not None:
        if split not in SPLITS:
            raise ManifestError(f"unknown split {split!r}; expected one of {SPLITS}", path)
        records = [r for r in records if r.split == split]
        if not records:
            raise ManifestError(f"no subject in split {split!r}", path)
    return records


def write_manifest(records: Iterable[Record], path: str | Path, relative_to: str | Path | None = None) -> Path:
    """Write records atomically; paths under `relative_to` (default: the manifest's folder) are stored relative."""
    path = Path(path)
    base = Path(relative_to or path.parent).resolve()
    lines = []
    for rec in records:
        d = rec.model_dump()
        d["images"] = {k: _rel(v, base) for k, v in rec.images.items()}
        d["mask"] = _rel(rec.mask, base) if rec.mask else None
        lines.append(json.dumps(d))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def assign_splits(
    records: list[Record],
    seed: int = 42,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
) -> list[Record]:
    """Seeded subject-level split, stratified by class and side (largest-remainder allocation per stratum).

    Subjects are grouped by id, so one subject never spans two splits. Existing splits are overwritten.
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    by_stratum: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_stratum[r.stratum].append(r)
    out: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        group = sorted(by_stratum[stratum], key=lambda r: r.id)
        rng = np.random.default_rng(stable_int(seed, stratum))
        order = rng.permutation(len(group))
        counts = _allocate(len(group), fractions)
        names = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
        for idx, name in zip(order, names):
            out[group[idx].id] = name
    return [r.model_copy(update={"split": out[r.id]}) for r in records]


def _allocate(n: int, fractions: tuple[float, ...]) -> list[int]:
    raw = [n * f for f in fractions]
    counts = [int(np.floor(x)) for x in raw]
    rest = n - sum(counts)
    for i in sorted(range(len(raw)), key=lambda i: (raw[i] - counts[i], -i), reverse=True)[:rest]:
        counts[i] += 1
    return counts


def _resolved(rec: Record, base: Path) -> Record:
    def res(p: str) -> str:
        q = Path(p)
        return str(q if q.is_absolute() else (base / q))

    return rec.model_copy(
        update={
            "images": {k: res(v) for k, v in rec.images.items()},
            "mask": res(rec.mask) if rec.mask else None,
        }
    )


def _rel(p: str | None, base: Path) -> str | None:
    if p is None:
        return None
    q = Path(p).resolve()
    try:
        return str(q.relative_to(base))
    except ValueError:
        return str(q)
