"""Uploads: a multipart body streamed into a private folder under a byte cap, each file recognised by its content.

Nothing here ever opens a path that came from a request: files are written under names this module chooses, the
client's file name is kept only to be shown back (in the record and in error sentences), and a zip's member names
are never used. Formats whose header points at another file (NIfTI .hdr/.img pairs, detached NRRD, MetaImage with
an external data file) are refused, since reading them would open a path the client chose.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from brain3d.errors import Brain3DError
from brain3d.fsutil import disk_errno, output_error

CHUNK = 1 << 20
MAX_FIELD_BYTES = 4096
MAX_PARTS = 16


class UploadError(Brain3DError):
    """A request's upload is refused; `status` is the HTTP status that says why (400, 413, 415 or 422)."""

    def __init__(self, message: str, status: int, name: str | None = None) -> None:
        self.status = status
        super().__init__(message, name)


STORAGE = "the server has no room for this upload (its upload folder is full or read-only); retry later"


def storage_error(exc: BaseException, folder: Path) -> UploadError:
    """507 for the client (no server path in it); the operator's log names the folder."""
    logging.getLogger("brain3d.serve").error("%s", output_error(exc, folder, "then the service accepts uploads again"))
    return UploadError(STORAGE, 507)


@dataclass
class UploadedFile:
    """One file part: `name` is the client's file name (shown, never opened); `path` where its bytes were put."""

    name: str
    path: Path
    size: int


@dataclass
class Upload:
    """A parsed multipart body: file parts in the order sent, plain fields by name."""

    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


def display_name(raw: str | None, index: int) -> str:
    """The client's file name reduced to its last component, for messages; `upload-N` when none was sent."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(c for c in name if c.isprintable())[:120] or f"upload-{index + 1}"


async def receive_form(stream: AsyncIterator[bytes], content_type: str | None, folder: Path,
                       max_bytes: int) -> Upload:
    """Parse a multipart/form-data body chunk by chunk, writing file parts into `folder` and stopping with 413 as
    soon as more than `max_bytes` arrived, so an oversized upload never lands whole, in memory or on disk.
    A small url-encoded form (fields only, e.g. a phantom id) is accepted too."""
    ctype, params = parse_options_header(content_type or "")
    if ctype == b"application/x-www-form-urlencoded":
        return await _urlencoded(stream)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadError("send the scan as multipart/form-data (a 'files' part per sequence, or a 'phantom' field)",
                          400)
    sink = _PartSink(folder)
    parser = MultipartParser(boundary, sink.callbacks())
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_bytes:
                raise UploadError(f"upload is larger than the limit of {max_bytes // (1024 * 1024)} MB", 413)
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # the parser's own errors for a malformed body; a full disk is the server's
        if disk_errno(exc) is not None:
            raise storage_error(exc, folder) from None
        raise UploadError(f"the multipart body is malformed ({type(exc).__name__})", 400) from None
    finally:
        sink.close()
    return sink.upload


async def _urlencoded(stream: AsyncIterator[bytes]) -> Upload:
    from urllib.parse import parse_qsl

    body = b""
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_FIELD_BYTES:
            raise UploadError(f"a url-encoded form is limited to {MAX_FIELD_BYTES} bytes; send files as "
                              "multipart/form-data", 413)
    return Upload(fields=dict(parse_qsl(body.decode("utf-8", "replace"))))


class _PartSink:
    """MultipartParser callbacks that write file parts to server-named files and keep small fields in memory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.upload = Upload()
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._fh: BinaryIO | None = None
        self._buffer: bytearray | None = None
        self._name = ""
        self._size = 0
        self._parts = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._hfield, "on_header_value": self._hvalue,
                "on_header_end": self._hend, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._end}

    def _begin(self) -> None:
        self._headers, self._field, self._value = {}, b"", b""
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise UploadError(f"the request has more than {MAX_PARTS} parts", 400)

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    def _headers_done(self) -> None:
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        self._size = 0
        if filename is None:
            self._buffer = bytearray()
            return
        index = len(self.upload.files)
        path = self.folder / f"part{index}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._fh = os.fdopen(fd, "wb")
        self.upload.files.append(UploadedFile(display_name(filename.decode("utf-8", "replace"), index), path, 0))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._fh is not None:
            self._fh.write(data[start:end])
        elif self._buffer is not None:
            if self._size > MAX_FIELD_BYTES:
                raise UploadError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes", 400)
            self._buffer += data[start:end]

    def _end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self.upload.files[-1].size = self._size
        elif self._buffer is not None:
            self.upload.fields[self._name] = self._buffer.decode("utf-8", "replace")
            self._buffer = None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ---- recognising files by content ----

NIFTI_PAIR = "is the header of a NIfTI pair (.hdr/.img); send a single-file NIfTI (.nii or .nii.gz)"
UNKNOWN = ("is not a volume this service reads (expected NIfTI .nii/.nii.gz, NRRD, MetaImage .mha or a zip of one "
           "DICOM series)")


def sniff(path: Path) -> str:
    """The upload's format from its first bytes: 'nii', 'nii.gz', 'nrrd', 'mha' or 'zip'; UploadError otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head:
        raise UploadError("is empty", 422)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                inner = gz.read(552)
        except (OSError, EOFError, zlib.error):
            raise UploadError("is gzip-compressed but truncated or corrupt", 422) from None
        kind = _nifti_kind(inner)
        if kind is None:
            raise UploadError("is gzip-compressed but not a NIfTI file", 415)
        return "nii.gz"
    kind = _nifti_kind(head)
    if kind is not None:
        return kind
    if head.startswith(b"NRRD000"):
        header = head.split(b"\n\n", 1)[0].lower()
        if b"\ndata file:" in header or b"\ndatafile:" in header:
            raise UploadError("is an NRRD header whose data lives in another file; send an NRRD with the data "
                              "attached", 415)
        return "nrrd"
    if _is_metaimage(head):
        if _metaimage_data_file(head) != b"local":
            raise UploadError("is a MetaImage header whose data lives in another file; send a .mha with the data "
                              "inside (ElementDataFile = LOCAL)", 415)
        return "mha"
    if len(head) > 132 and head[128:132] == b"DICM":
        raise UploadError("is a single DICOM file; send the whole series as one zip", 415)
    raise UploadError(UNKNOWN, 415)


def _nifti_kind(head: bytes) -> str | None:
    """'nii' for a single-file NIfTI-1/-2 header; UploadError for a NIfTI pair; None when not NIfTI at all."""
    if len(head) >= 348:
        for order in ("<", ">"):
            if struct.unpack(order + "i", head[:4])[0] == 348:
                magic = head[344:348]
                if magic == b"n+1\x00":
                    return "nii"
                if magic == b"ni1\x00":
                    raise UploadError(NIFTI_PAIR, 415)
            if struct.unpack(order + "i", head[:4])[0] == 540 and head[4:8] == b"n+2\x00":
                return "nii"
            if struct.unpack(order + "i", head[:4])[0] == 540 and head[4:8] == b"ni2\x00":
                raise UploadError(NIFTI_PAIR, 415)
    return None


def _is_metaimage(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].strip().split(b"=", 1)[0].strip().lower()
    return first in (b"objecttype", b"ndims", b"comment", b"objectsubtype", b"transformtype")


def _metaimage_data_file(head: bytes) -> bytes | None:
    """The (lowercased) ElementDataFile value of a MetaImage header: b'local' when the voxels follow it."""
    for line in head.split(b"\n"):
        key, _, value = line.partition(b"=")
        if key.strip().lower() == b"elementdatafile":
            return value.strip().lower()
    return None


def unpack_dicom_zip(path: Path, folder: Path, max_bytes: int, max_members: int) -> Path:
    """Unpack the DICOM files of a zip into `folder` under numbered names (member names are never used), refusing
    a zip that would unpack beyond `max_bytes` or `max_members`, and one without any DICOM file."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UploadError("is not a readable zip archive", 422) from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > max_members:
            raise UploadError(f"holds {len(members)} files, more than the limit of {max_members}", 413)
        if sum(m.file_size for m in members) > max_bytes:
            raise UploadError(f"unpacks to more than {max_bytes // (1024 * 1024)} MB", 413)
        try:
            folder.mkdir(mode=0o700)
        except OSError as exc:
            if disk_errno(exc) is None:
                raise
            raise storage_error(exc, folder.parent) from None
        found, written = 0, 0
        for i, member in enumerate(members):
            target = folder / f"{i:05d}.dcm"
            try:
                with archive.open(member) as src, open(target, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:  # the sizes in a zip's directory can lie
                            raise UploadError(f"unpacks to more than {max_bytes // (1024 * 1024)} MB", 413)
                        dst.write(chunk)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, zlib.error) as exc:
                if isinstance(exc, OSError) and disk_errno(exc) is not None:
                    raise storage_error(exc, folder) from None
                raise UploadError(f"has a member that cannot be unpacked ({type(exc).__name__})", 422) from None
            if _is_dicom(target):
                found += 1
            else:
                target.unlink()
    if not found:
        raise UploadError("holds no DICOM files (expected a zip of one DICOM series)", 422)
    return folder


def _is_dicom(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"


def materialise(upload: UploadedFile, index: int, folder: Path, max_zip_bytes: int, max_members: int) -> Path:
    """Give an uploaded file the name its sniffed format needs (readers choose by suffix), or unpack a zip into a
    DICOM series folder; returns what the volume reader should open."""
    kind = sniff(upload.path)
    if kind == "zip":
        return unpack_dicom_zip(upload.path, folder / f"series{index}", max_zip_bytes, max_members)
    target = folder / f"scan{index}.{kind}"
    os.replace(upload.path, target)
    return target
