"""The package's own exception types.

Every user-facing failure is one of these, carrying one sentence that names the file and the problem;
the CLI prints that sentence and exits non-zero without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class Brain3DError(Exception):
    """Base of every error brain3d reports to a user."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.reason = message  # the sentence without the path, to name another file (e.g. the client's name)
        super().__init__(f"{path}: {message}" if path is not None else message)


class VolumeError(Brain3DError):
    """A scan cannot be read or is not a usable 3D volume."""


class ManifestError(Brain3DError):
    """A manifest file is missing, malformed or inconsistent."""


class CheckpointError(Brain3DError):
    """A checkpoint or base-model folder is missing or incomplete."""


class ConfigError(Brain3DError):
    """A run configuration is invalid."""


class TrainingError(Brain3DError):
    """Training cannot proceed as configured (e.g. a contrastive batch without negatives)."""


class ExplainError(Brain3DError):
    """A scan's report cannot be explained as asked, e.g. it does not contain the target word."""


class OutputError(Brain3DError):
    """An output folder cannot take a result: the disk is full, the folder is read-only or not writable. What was
    finished stays; a rerun after space is freed resumes."""


class ExportError(Brain3DError):
    """A report cannot be written in a hospital format (DICOM SR, FHIR), e.g. a NIfTI input has no DICOM headers."""
