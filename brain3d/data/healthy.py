"""Healthy controls from a BIDS tree (e.g. OpenNeuro ds000221, MPI-Leipzig Mind-Brain-Body) → stripped scans + records.

Layout read: BIDS_ROOT/sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>][_<key>-<value>...]_<MOD>.nii[.gz]
with MOD the modality suffix (FLAIR, T1w, T2w). One scan per subject: the first session, then the first
file name, in sorted order (ds000221 has one FLAIR per subject).

Each scan is read through `brain3d.io`, skull-stripped offline (`data.skullstrip`) and written, with its true
world affine (as a canonical RAS NIfTI), to OUT_DIR/sub-<label>/<stem>_desc-brain_<MOD>.nii.gz, beside its
mask (…_desc-brain_mask.nii.gz). The report is one of the normal-study templates of `vocabulary.normal_report`
(an opener and three to five sentences), chosen by a SHA-256 of the subject id — the same text in every run,
unlike the reference code's salted `hash()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from brain3d.data.manifest import Record
from brain3d.errors import Brain3DError
from brain3d.vocabulary import normal_report

SOURCE = "healthy"
MARKER = "healthy.json"
_SUB = re.compile(r"^sub-[A-Za-z0-9]+$")
_SES = re.compile(r"^ses-[A-Za-z0-9]+$")
SEQUENCE_OF = {"FLAIR": "flair", "T1w": "t1", "T2w": "t2"}  # BIDS suffix → the manifest's sequence name


@dataclass(frozen=True)
class Scan:
    subject: str  # "sub-010001"
    path: Path

    @property
    def stem(self) -> str:
        name = self.path.name
        return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[: -len(".nii")]


def find_scans(root: str | Path, modality: str = "FLAIR") -> list[Scan]:
    """One scan of `modality` per subject of a BIDS tree, sorted by subject."""
    root = Path(root)
    if not root.is_dir():
        raise Brain3DError("is not a folder", root)
    subjects = sorted(p for p in root.iterdir() if p.is_dir() and _SUB.match(p.name))
    if not subjects:
        raise Brain3DError("is not a BIDS tree: it has no sub-<label> folder", root)
    pattern = re.compile(rf"^(sub-[A-Za-z0-9]+)(_[A-Za-z]+-[A-Za-z0-9]+)*_{re.escape(modality)}\.nii(\.gz)?$")
    scans = []
    for sub in subjects:
        sessions = sorted(p for p in sub.iterdir() if p.is_dir() and _SES.match(p.name)) or [sub]
        for folder in sessions:
            hits = sorted(p for p in (folder / "anat").glob(f"*_{modality}.nii*")
                          if p.is_file() and pattern.match(p.name) and p.name.startswith(sub.name + "_"))
            if hits:
                scans.append(Scan(sub.name, hits[0]))
                break
    if not scans:
        raise Brain3DError(f"has no anat/*_{modality}.nii[.gz] scan in any of its {len(subjects)} subjects", root)
    return scans


def strip_scan(scan: Scan, out_dir: Path, modality: str, device: str = "cpu") -> tuple[Path, Path]:
    """Skull-strip one scan into out_dir/<subject>/ (brain and mask); returns (brain path, mask path)."""
    import numpy as np

    from brain3d.data.skullstrip import strip
    from brain3d.io import read_volume, write_nifti

    vol = read_volume(scan.path)
    brain, mask = strip(vol, device)
    base = scan.stem[: -len(f"_{modality}")]
    folder = out_dir / scan.subject
    brain_path = write_nifti(brain.data, brain.affine, folder / f"{base}_desc-brain_{modality}.nii.gz")
    mask_path = write_nifti(mask.astype(np.float32), vol.affine, folder / f"{base}_desc-brain_mask.nii.gz")
    return brain_path, mask_path


def build_records(
    scans: list[Scan],
    out_dir: Path,
    final_dir: Path,
    modality: str = "FLAIR",
    device: str = "cpu",
    progress: Callable[[], None] | None = None,
) -> list[Record]:
    """Strip every scan into `out_dir` and return records whose paths point into `final_dir` (its final name)."""
    seq = SEQUENCE_OF.get(modality, modality.lower())
    records = []
    for scan in scans:
        brain_path, _ = strip_scan(scan, out_dir, modality, device)
        final = final_dir / brain_path.relative_to(out_dir)
        records.append(Record(id=scan.subject, images={seq: str(final)}, mask=None, report=normal_report(scan.subject),
                              healthy=True, truth=None, source=SOURCE))
        if progress:
            progress()
    return records


def check_replaceable(out_dir: Path) -> None:
    """Refuse to replace a folder that is not empty and was not written by this command."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).is_file())):
        raise Brain3DError("exists and holds other files; choose a new or empty folder for the stripped scans", out_dir)
