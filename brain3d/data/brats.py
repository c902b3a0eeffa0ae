"""BraTS2020 (+ TextBraTS reports) → manifest records, with the truth measured on each subject's seg mask.

Layout read (as distributed; folders may be nested at any depth, or every file flat in one folder):
    ROOT/.../BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii[.gz]
    REPORTS/.../BraTS20_Training_001/BraTS20_Training_001_flair_text.txt   (TextBraTS; REPORTS may be ROOT)
Subjects are found by the BraTS file names alone. One oddity of the real release is accepted: subject 355's
seg is named `W39_1998.09.19_Segm.nii`; a single `*_Segm.nii[.gz]` in a subject's folder counts as its seg.

Every image is read once through `brain3d.io` (a truncated file is found here, not mid-training), and the
truth comes from `data.truth` (side by the midsagittal plane, lobes by registering the MNI atlas, volumes).
"""

from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from brain3d.data.manifest import Record
from brain3d.errors import Brain3DError, ManifestError, VolumeError

SEQUENCES = ("flair", "t1", "t1ce", "t2")
SOURCE = "brats"
_FILE = re.compile(r"^(?P<id>BraTS[0-9A-Za-z]*_(?:[A-Za-z]+_)?\d+)_(?P<kind>flair|t1ce|t1|t2|seg)\.nii(?:\.gz)?$")
_REPORT = re.compile(r"^(?P<id>BraTS[0-9A-Za-z]*_(?:[A-Za-z]+_)?\d+)_flair_text\.txt$")
_ODD_SEG = re.compile(r"_Segm\.nii(?:\.gz)?$")


@dataclass
class Subject:
    id: str
    files: dict[str, Path] = field(default_factory=dict)  # kind (flair, t1, t1ce, t2, seg) → path
    report: Path | None = None

    @property
    def seg(self) -> Path | None:
        return self.files.get("seg")


@dataclass(frozen=True)
class Outcome:
    """What became of one subject: a record, or the one-sentence reason it was left out."""

    id: str
    record: Record | None
    problem: str | None = None


def find_subjects(root: str | Path) -> dict[str, Subject]:
    """Subjects under `root` by BraTS file names, sorted by id; two files for one subject and kind are refused."""
    root = Path(root)
    if not root.is_dir():
        raise Brain3DError("is not a folder", root)
    subjects: dict[str, Subject] = {}
    odd: list[Path] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        m = _FILE.match(path.name)
        if m is None:
            if _ODD_SEG.search(path.name):
                odd.append(path)
            continue
        sub = subjects.setdefault(m["id"], Subject(m["id"]))
        kind = m["kind"]
        if kind in sub.files:
            raise ManifestError(f"duplicate subject id {m['id']}: {kind} found twice ({sub.files[kind]} and {path})", root)
        sub.files[kind] = path
    for path in odd:  # a folder named after a subject with no regular seg
        sub = subjects.get(path.parent.name)
        if sub is not None and sub.seg is None:
            sub.files["seg"] = path
    if not subjects:
        raise Brain3DError("holds no BraTS subject (no file named like BraTS20_Training_001_flair.nii.gz)", root)
    return dict(sorted(subjects.items()))


def attach_reports(subjects: dict[str, Subject], reports_root: str | Path) -> int:
    """Attach TextBraTS report files found under `reports_root`; returns how many subjects have one."""
    reports_root = Path(reports_root)
    if not reports_root.is_dir():
        raise Brain3DError("is not a folder", reports_root)
    seen: dict[str, Path] = {}
    for path in sorted(reports_root.rglob("*_flair_text.txt")):
        m = _REPORT.match(path.name)
        if m is None or m["id"] not in subjects:
            continue
        if m["id"] in seen:
            raise ManifestError(f"duplicate subject id {m['id']}: two reports ({seen[m['id']]} and {path})", reports_root)
        seen[m["id"]] = path
        subjects[m["id"]].report = path
    return len(seen)


def read_report(path: Path) -> str:
    """A report file's text as one paragraph; an empty file is refused."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError("is not UTF-8 text", path) from None
    text = " ".join(text.split())
    if not text:
        raise ManifestError("is an empty report", path)
    return text


def subject_record(sub: Subject, sequences: tuple[str, ...], atlas_mm: int = 2) -> Record:
    """Read every file of one subject and build its record; the truth is measured when the seg exists."""
    from brain3d.data.truth import truth_from_mask
    from brain3d.io import read_volume
    from brain3d.anatomy.atlas import load_atlas

    missing = [s for s in sequences if s not in sub.files]
    if missing:
        raise VolumeError(f"subject {sub.id} has no {missing[0]} file (has {', '.join(sorted(sub.files))})",
                          next(iter(sub.files.values())).parent)
    report = read_report(sub.report) if sub.report else ""
    vols = {s: read_volume(sub.files[s]) for s in sequences}
    truth = None
    if sub.seg is not None:
        seg = read_volume(sub.seg)
        ref = sequences[0]
        truth = truth_from_mask(vols[ref], seg, load_atlas(atlas_mm), ref)
    return Record(
        id=sub.id,
        images={s: str(sub.files[s]) for s in sequences},
        mask=str(sub.seg) if sub.seg else None,
        report=report,
        healthy=False,
        truth=truth,
        source=SOURCE,
    )


def build_records(
    subjects: Iterable[Subject],
    sequences: tuple[str, ...] = ("flair",),
    skip_bad: bool = False,
    workers: int = 1,
    progress: Callable[[], None] | None = None,
) -> list[Outcome]:
    """One outcome per subject, in order. Without `skip_bad` the first unreadable subject stops everything."""
    subjects = list(subjects)
    bad = [s for s in sequences if s not in SEQUENCES]
    if bad or not sequences:
        raise Brain3DError(f"unknown sequence {bad[0] if bad else '(none)'}; choose from {', '.join(SEQUENCES)}")
    outcomes: list[Outcome] = []
    if workers <= 1:
        for sub in subjects:
            outcomes.append(_one(sub, sequences, skip_bad))
            if progress:
                progress()
        return outcomes
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for out in pool.map(_one, subjects, [sequences] * len(subjects), [skip_bad] * len(subjects)):
            outcomes.append(out)
            if progress:
                progress()
    return outcomes


def _one(sub: Subject, sequences: tuple[str, ...], skip_bad: bool) -> Outcome:
    try:
        return Outcome(sub.id, subject_record(sub, sequences))
    except (VolumeError, ManifestError) as exc:
        if not skip_bad:
            raise
        return Outcome(sub.id, None, str(exc))
