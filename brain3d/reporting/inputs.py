"""Turn what a user points `brain3d report` at into a list of scans, one per subject.

Accepted inputs: a volume file (NIfTI, NRRD, MHA); several sequence files of one subject joined by commas
(`flair.nii.gz,t1.nii.gz`, in the checkpoint's sequence order); a DICOM series folder; a manifest (.jsonl,
the reference report is carried along); or a folder, searched recursively for all of these. In a folder,
files named `<subject>_<sequence>.nii[.gz]` (BraTS layout) are grouped per subject and only the checkpoint's
sequences are used, so segmentation masks and other sequences are not mistaken for scans.
Sequence names come from file names only for grouping; orientation and class never do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from brain3d.data.manifest import read_manifest
from brain3d.errors import VolumeError
from brain3d.io import ITK_SUFFIXES, NIFTI_SUFFIXES

VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
_MASK_WORDS = ("seg", "mask", "label", "labels")


@dataclass
class ScanInput:
    """One subject to report on: its sequence files in the checkpoint's order."""

    id: str
    paths: list[str]
    source: str
    reference: str | None = None
    healthy: bool | None = None
    truth: dict | None = None
    meta: dict = field(default_factory=dict)


def discover(inputs: Sequence[str | Path], sequences: Sequence[str] = ("flair",),
             series_uid: str | None = None) -> list[ScanInput]:
    """Expand user inputs into scans; ids are made unique; an input that matches nothing is an error."""
    scans: list[ScanInput] = []
    for raw in inputs:
        text = str(raw)
        if "," in text:
            parts = [p for p in text.split(",") if p]
            if len(parts) != len(sequences):
                raise VolumeError(f"names {len(parts)} files but the checkpoint needs {len(sequences)} "
                                  f"sequences ({', '.join(sequences)})", text)
            scans.append(ScanInput(_stem(Path(parts[0])), parts, text))
            continue
        path = Path(text)
        if path.name.endswith(".jsonl"):
            scans += from_manifest(path, sequences)
        elif path.is_dir() and is_dicom_series_folder(path):
            scans.append(ScanInput(path.name, [str(path)], str(path), meta={"series_uid": series_uid}))
        elif path.is_dir():
            found = _from_folder(path, sequences)
            if not found:
                raise VolumeError("is a folder without any scan (NIfTI, NRRD, MHA or DICOM series)", path)
            scans += found
        else:
            # a single file (or a missing one: reading it later reports the problem for this scan only)
            if len(sequences) > 1:
                raise VolumeError(f"is one file but the checkpoint needs {len(sequences)} sequences "
                                  f"({', '.join(sequences)}); join them with commas", path)
            scans.append(ScanInput(_stem(path), [str(path)], str(path)))
    return _unique_ids(scans)


def from_manifest(path: str | Path, sequences: Sequence[str], split: str | None = None) -> list[ScanInput]:
    """The subjects of a manifest (one split, or all) as scans; the lesion mask path, when the record has one,
    rides along in `meta["mask"]` (explanations score their grounding against it)."""
    out = []
    for rec in read_manifest(path, split):
        out.append(ScanInput(rec.id, rec.image_paths(sequences), str(path), reference=rec.report,
                             healthy=rec.healthy, truth=rec.truth.model_dump() if rec.truth else None,
                             meta={"mask": rec.mask} if rec.mask else {}))
    return out


def _from_folder(folder: Path, sequences: Sequence[str]) -> list[ScanInput]:
    all_files = [p for p in folder.rglob("*") if p.is_file()]
    files = sorted(p for p in all_files if p.name.lower().endswith(VOLUME_SUFFIXES))
    dicom_dirs = sorted({p.parent for p in all_files if _looks_dicom(p)})
    grouped: dict[tuple[Path, str], dict[str, Path]] = {}
    loose: list[Path] = []
    pattern = re.compile(r"^(?P<subject>.+)[_-](?P<seq>[A-Za-z0-9]+)$")
    for f in files:
        m = pattern.match(_stem(f))
        seq = m.group("seq").lower() if m else None
        if seq in _MASK_WORDS:
            continue
        if m and seq in {s.lower() for s in sequences} | {"flair", "t1", "t1ce", "t2", "t1gd", "dwi", "adc"}:
            grouped.setdefault((f.parent, m.group("subject")), {})[seq] = f
        else:
            loose.append(f)
    scans = []
    for (parent, subject), by_seq in sorted(grouped.items()):
        if all(s.lower() in by_seq for s in sequences):
            scans.append(ScanInput(subject, [str(by_seq[s.lower()]) for s in sequences], str(parent)))
    if len(sequences) == 1:
        scans += [ScanInput(_stem(f), [str(f)], str(f)) for f in loose]
        scans += [ScanInput(d.name, [str(d)], str(d)) for d in dicom_dirs]
    return scans


def is_dicom_series_folder(path: Path) -> bool:
    """Whether a folder directly holds DICOM Part 10 files (a series folder, not a folder of folders)."""
    return any(_looks_dicom(p) for p in path.iterdir() if p.is_file())


def _looks_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' at byte 128, whatever their name."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _stem(path: Path) -> str:
    name = path.name
    for suf in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return path.stem


def safe_name(scan_id: str) -> str:
    """A scan id as a file name: characters other than letters, digits, '-', '_' and '.' become '_'."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in scan_id)


def _unique_ids(scans: list[ScanInput]) -> list[ScanInput]:
    seen: dict[str, int] = {}
    for s in scans:
        n = seen.get(s.id, 0)
        seen[s.id] = n + 1
        if n:
            s.id = f"{s.id}-{n + 1}"
    return scans
