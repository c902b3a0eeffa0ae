"""The DICOM headers of the scan a report was written for: the evidence an SR cites and the patient/study it joins.

Only headers are read (no pixel data), from exactly the files `brain3d.io` read the volume from, so the SR
references the instances the model saw: no more (other series in the folder), no fewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from brain3d.errors import ExportError, VolumeError
from brain3d.io import dicom_series_files
from brain3d.reporting.inputs import is_dicom_series_folder


def require_dicom_series(paths: Sequence[str | Path], what: str = "--dicom-sr") -> None:
    """Refuse inputs that are not DICOM series folders: without DICOM headers there is no patient, study or
    source image for an SR to belong to."""
    for raw in paths:
        for part in str(raw).split(","):
            path = Path(part)
            if not (path.is_dir() and is_dicom_series_folder(path)):
                raise ExportError(f"is not a DICOM series folder, so {what} has no patient, study or source images "
                                  "to put a DICOM SR in (NIfTI and other volume files carry no DICOM headers)", path)


def read_source_headers(paths: Sequence[str | Path], series_uid: str | None = None) -> list[Dataset]:
    """Headers of every instance of the scan's series (one folder per sequence), in the reader's order.

    All sequences must belong to one study: an SR lives in exactly one study."""
    require_dicom_series(paths)
    headers: list[Dataset] = []
    for path in paths:
        _, files = dicom_series_files(path, series_uid if len(paths) == 1 else None)
        for f in files:
            try:
                headers.append(pydicom.dcmread(f, stop_before_pixels=True))
            except (InvalidDicomError, OSError, ValueError) as exc:
                raise VolumeError(f"cannot be read as DICOM ({str(exc).splitlines()[0][:200]})", f) from None
    studies = {str(h.get("StudyInstanceUID", "")) for h in headers}
    if len(studies) != 1 or "" in studies:
        raise ExportError(f"holds series of {len(studies)} studies (or none); a DICOM SR belongs to exactly one",
                          paths[0])
    return headers
