"""Reports in hospital formats: one pure entry point (`render`) and the files `brain3d report` writes with it.

`render` turns a report record (the JSON `brain3d report` writes) plus the source scan's DICOM headers into the
bytes of a DICOM SR or a FHIR bundle; it reads and writes nothing, so a server can call it per request
(`?format=dicom-sr|fhir`). `Exporter` writes `<id>.sr.dcm` and `<id>.fhir.json` next to `<id>.json`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, Sequence

from pydicom.dataset import Dataset

from brain3d.fsutil import atomic_write_bytes
from brain3d.reporting.device import Device
from brain3d.reporting.dicom_source import read_source_headers
from brain3d.reporting.inputs import ScanInput, is_dicom_series_folder, safe_name
from brain3d.reporting.schema import ReportRecord

Format = Literal["dicom-sr", "fhir"]
FORMATS: tuple[str, ...] = ("dicom-sr", "fhir")
SUFFIX: dict[str, str] = {"dicom-sr": ".sr.dcm", "fhir": ".fhir.json"}
MEDIA_TYPE: dict[str, str] = {"dicom-sr": "application/dicom", "fhir": "application/fhir+json"}


def render(record: ReportRecord | dict, fmt: Format, device: Device, headers: Sequence[Dataset] | None = None, *,
           created: dt.datetime | None = None) -> bytes:
    """The report in `fmt`: a DICOM Part 10 SR (needs `headers`) or FHIR R4B bundle JSON (headers optional)."""
    if fmt == "dicom-sr":
        from brain3d.reporting.dicom_sr import build_sr, sr_bytes

        return sr_bytes(build_sr(record, headers or [], device, created=created))
    if fmt == "fhir":
        from brain3d.reporting.fhir import build_bundle, bundle_json

        return bundle_json(build_bundle(record, device, headers, created=created)).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def source_headers(scan: ScanInput) -> list[Dataset] | None:
    """The DICOM headers of a scan read from DICOM series folders; None for NIfTI and other volume files."""
    if not all(Path(p).is_dir() and is_dicom_series_folder(Path(p)) for p in scan.paths):
        return None
    return read_source_headers(scan.paths, scan.meta.get("series_uid"))


class Exporter:
    """Writes the requested formats for each finished record, next to its `<id>.json`."""

    def __init__(self, out_dir: Path, formats: Sequence[str], device: Device) -> None:
        self.out_dir, self.formats, self.device = Path(out_dir), tuple(formats), device

    def path(self, rec_id: str, fmt: str) -> Path:
        return self.out_dir / f"{safe_name(rec_id)}{SUFFIX[fmt]}"

    def missing(self, rec_id: str) -> bool:
        return any(not self.path(rec_id, f).is_file() for f in self.formats)

    def __call__(self, rec: ReportRecord, scan: ScanInput) -> list[Path]:
        """Write every requested format of a successful record; returns the paths written."""
        if rec.error is not None or not self.formats:
            return []
        headers = source_headers(scan)
        return [atomic_write_bytes(self.path(rec.id, fmt), render(rec, fmt, self.device, headers))
                for fmt in self.formats]
