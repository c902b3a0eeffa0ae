"""Merge manifests and split them: the paper's 70/10/20 or TextBraTS' own train/test split.

- paper: subject-level 70/10/20, seeded, stratified by class and side (`manifest.assign_splits`).
- textbrats: BraTS subjects keep TextBraTS' split, read from its Train.json / Test.json (lists of
  {"image": [...], "label": "BraTS20_Training_NNN/..._seg.nii.gz", ...} under "training"); its test set is
  used unchanged, and one eighth of its train set (seeded, stratified by side) becomes validation, so the
  proportions stay near 70/10/20. Every other subject (the healthy controls) gets the paper split.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from brain3d.data.manifest import Record, assign_splits, read_manifest
from brain3d.errors import ManifestError

TEXTBRATS_FILES = {"train": "Train.json", "test": "Test.json"}
_ID = re.compile(r"(BraTS[0-9A-Za-z]*_(?:[A-Za-z]+_)?\d+)")


def merge(paths: list[Path]) -> list[Record]:
    """Records of several manifests (paths resolved), refusing a subject id that occurs twice."""
    if not paths:
        raise ManifestError("no manifest to merge")
    out: list[Record] = []
    origin: dict[str, Path] = {}
    for path in paths:
        for rec in read_manifest(path):
            if rec.id in origin:
                raise ManifestError(f"duplicate subject id {rec.id!r} (also in {origin[rec.id]})", path)
            origin[rec.id] = path
            out.append(rec)
    return out


def paper_split(records: list[Record], seed: int = 42) -> list[Record]:
    """The paper's subject-level 70/10/20 split, stratified by class and side."""
    return assign_splits(records, seed=seed)


def read_textbrats_split(folder: Path) -> dict[str, str]:
    """Subject id → 'train' | 'test' from TextBraTS' Train.json and Test.json in `folder`."""
    out: dict[str, str] = {}
    for split, name in TEXTBRATS_FILES.items():
        path = Path(folder) / name
        if not path.is_file():
            raise ManifestError(f"TextBraTS split file {name} not found", folder)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))["training"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ManifestError('is not a TextBraTS split file (expected {"training": [...]})', path) from None
        for entry in entries:
            paths = [entry.get("label", "")] + list(entry.get("image", [])) if isinstance(entry, dict) else []
            ids = {m.group(1) for p in paths for m in [_ID.search(str(p))] if m}
            if len(ids) != 1:
                raise ManifestError(f"has an entry that names no single BraTS subject: {str(entry)[:120]}", path)
            sid = ids.pop()
            if out.get(sid, split) != split:
                raise ManifestError(f"subject {sid} is in both Train.json and Test.json", folder)
            out[sid] = split
    return out


def textbrats_split(records: list[Record], table: dict[str, str], seed: int = 42) -> list[Record]:
    """TextBraTS' split for BraTS subjects (val carved from its train set), the paper split for the rest."""
    brats = [r for r in records if r.source == "brats"]
    others = [r for r in records if r.source != "brats"]
    missing = [r.id for r in brats if r.id not in table]
    if missing:
        raise ManifestError(f"BraTS subject {missing[0]} is in neither Train.json nor Test.json "
                            f"({len(missing)} such subjects); use --split paper or the full TextBraTS split")
    train = [r for r in brats if table[r.id] == "train"]
    carved = {r.id: r.split for r in assign_splits(train, seed=seed, fractions=(0.875, 0.125, 0.0))}
    split_of = {r.id: ("test" if table[r.id] == "test" else carved[r.id]) for r in brats}
    split_of.update({r.id: r.split for r in (paper_split(others, seed) if others else [])})
    return [r.model_copy(update={"split": split_of[r.id]}) for r in records]
