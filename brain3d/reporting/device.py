"""Who wrote a report: the model as a device, with a UID that changes whenever the checkpoint changes.

PACS and EHRs identify an algorithm by its device UID (DICOM Device UID, FHIR Device.identifier). A name and a
version alone would let two differently trained checkpoints pass as the same device, so the UID is derived from
the bytes of every file in the checkpoint folder (config, weights, adapter), not from its path or date.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from brain3d import __version__
from brain3d.errors import CheckpointError

MANUFACTURER = "brain3d"
MODEL_NAME = "Brain3D report generator"
_UID_NAMESPACE = uuid.UUID("0b6e2f7e-51c4-5a0e-8f0d-3d9b1f7a2c41")  # brain3d's name-based UIDs


@dataclass(frozen=True)
class Device:
    """The model that wrote the report: shown in ContributingEquipmentSequence, the SR observer and FHIR Device."""

    uid: str
    name: str
    version: str
    checkpoint_sha256: str
    manufacturer: str = MANUFACTURER
    model_name: str = MODEL_NAME

    @property
    def software_versions(self) -> list[str]:
        return [f"brain3d {self.version}", f"checkpoint sha256:{self.checkpoint_sha256[:16]}"]


def checkpoint_digest(ckpt_dir: str | Path) -> str:
    """SHA-256 over every file of a checkpoint folder (relative path and contents, in sorted order)."""
    root = Path(ckpt_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise CheckpointError("is not a checkpoint folder with files to identify the model by", root)
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def device_for(ckpt_dir: str | Path, name: str | None = None) -> Device:
    """The device record of a checkpoint; its UID is a 2.25 UID derived from the checkpoint digest."""
    digest = checkpoint_digest(ckpt_dir)
    uid = derived_uid("device", digest)
    return Device(uid=uid, name=name or f"brain3d {Path(ckpt_dir).name}"[:64], version=__version__,
                  checkpoint_sha256=digest)


def derived_uid(*parts: str) -> str:
    """A DICOM UID under the 2.25 (UUID) root from a name-based UUID of `parts`: the same parts, the same UID."""
    return f"2.25.{uuid.uuid5(_UID_NAMESPACE, chr(31).join(parts)).int}"
