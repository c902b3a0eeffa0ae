"""From an upload (or a demo phantom) to a validated, preprocessed scan, with errors retold in the client's words.

A scan is read once, here, before it is queued: a bad file is answered at once with a 4xx and the CLI's sentence
(its server-side file name replaced by the name the client sent), and the batcher receives the model tensor in
memory instead of reading the file again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from brain3d.data.manifest import Record, read_manifest
from brain3d.errors import Brain3DError
from brain3d.io import Volume, read_sequences
from brain3d.preprocess import ModelVolume, PreprocessConfig, preprocess_volume
from brain3d.reporting.inputs import safe_name
from brain3d.serve.uploads import Upload, UploadError, materialise

VOLUME_ERROR_STATUS = 422


@dataclass
class LoadedScan:
    """A scan ready for the model: `names` as the client knows them (shown in the record), `paths` as the reader
    opened them (they exist while the request lasts), the volume in model axes at its own resolution (for the
    page) and the preprocessed tensor (for the model)."""

    id: str
    names: list[str]
    paths: list[str]
    volume: Volume
    model: ModelVolume
    seconds: float
    series_uid: str | None = None


def retold(exc: Brain3DError, names: dict[str, str], status: int = VOLUME_ERROR_STATUS) -> UploadError:
    """The same sentence with every server-side path in it replaced by the client's name for that file."""
    text = str(exc)
    for path in sorted(names, key=len, reverse=True):
        text = text.replace(path, names[path])
    return UploadError(text, getattr(exc, "status", status))


def read_scan(paths: Sequence[str], names: Sequence[str], sequences: Sequence[str], pre: PreprocessConfig,
              series_uid: str | None = None, volume_index: int | None = None) -> LoadedScan:
    """Read and preprocess one subject's files; a reader error becomes an UploadError naming the client's file."""
    t0 = time.perf_counter()
    try:
        volume = read_sequences(list(paths), names=list(sequences), series_uid=series_uid, volume_index=volume_index)
        model = preprocess_volume(volume, pre)
    except Brain3DError as exc:
        raise retold(exc, dict(zip(map(str, paths), names))) from None
    return LoadedScan(scan_id(names[0]), list(names), [str(p) for p in paths], volume, model,
                      time.perf_counter() - t0, series_uid)


def scan_id(name: str) -> str:
    """A record id from the client's first file name: its stem without volume suffixes, made file-name safe."""
    stem = name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".zip", ".gz"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return safe_name(stem) or "upload"


def load_upload(upload: Upload, folder: Path, sequences: Sequence[str], pre: PreprocessConfig,
                max_zip_bytes: int, max_zip_members: int, series_uid: str | None = None,
                volume_index: int | None = None) -> LoadedScan:
    """Sniff, rename or unpack each file part (one per sequence, in the checkpoint's order) and read the scan."""
    if len(upload.files) != len(sequences):
        raise UploadError(f"sent {len(upload.files)} files but the model needs {len(sequences)} "
                          f"({', '.join(sequences)}), one 'files' part each, in that order", 400)
    paths = []
    for i, part in enumerate(upload.files):
        try:
            paths.append(str(materialise(part, i, folder, max_zip_bytes, max_zip_members)))
        except UploadError as exc:  # the file's own problem names it; the server's lack of room (507) does not
            raise (exc if exc.status == 507 else UploadError(str(exc), exc.status, part.name)) from None
    return read_scan(paths, [f.name for f in upload.files], sequences, pre, series_uid, volume_index)


class Phantoms:
    """Ready-made example scans the page offers, looked up by id in a manifest the server was started with
    (a request names an id, never a path)."""

    def __init__(self, manifest: Path | None, limit: int = 12) -> None:
        records = read_manifest(manifest) if manifest is not None and Path(manifest).is_file() else []
        held_out = [r for r in records if r.split == "test"] or records
        self.records: dict[str, Record] = {r.id: r for r in held_out[:limit]}

    def listing(self) -> list[dict]:
        """What the page shows per phantom: id and its known truth."""
        return [{"id": r.id, "healthy": r.healthy, "side": r.truth.side if r.truth else None,
                 "lobes": list(r.truth.lobes) if r.truth else []} for r in self.records.values()]

    def load(self, phantom_id: str, sequences: Sequence[str], pre: PreprocessConfig) -> LoadedScan:
        rec = self.records.get(phantom_id)
        if rec is None:
            raise UploadError(f"there is no demo phantom {phantom_id[:80]!r}; GET /v1/phantoms lists them", 404)
        paths = rec.image_paths(sequences)
        names = [f"{rec.id}_{s}" for s in sequences]
        scan = read_scan(paths, names, sequences, pre)
        scan.id = rec.id
        return scan
