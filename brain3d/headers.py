"""What a scan's header declares, checked before a library reads the scan.

The readers (nibabel, ITK's MetaIO, teem and GDCM) trust their headers: ITK hangs on a MetaImage with a negative
NDims and crashes the process on others; a 1 KB file whose header declares half a gigabyte of voxels makes them
allocate all of it before they notice the data is missing; a DICOM series with a missing or duplicated slice, or
slices that disagree on orientation or pixel spacing, is read as a volume with the wrong geometry. Each check here
raises a `VolumeError` with one sentence naming the file, so that none of that reaches the libraries.
"""

from __future__ import annotations

import bz2
import gzip
import math
import zlib
from pathlib import Path
from typing import Callable, Sequence

from brain3d.errors import VolumeError

# compressed data declared larger than this is decompressed once (and thrown away) to check that it is really
# there before a library allocates room for all of it; smaller claims cost at most this much memory
STREAM_CHECK_BYTES = 64 << 20
MAX_HEADER_BYTES = 1 << 16  # a text header longer than this is not a header
ITK_MAX_DIMS = 5  # ITK's image IO reads at most 5 dimensions
VOXEL_MM = (1e-3, 1e3)  # a voxel side outside this range (mm) is a header's lie, not an MRI

MET_BYTES = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
             "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
             "MET_DOUBLE": 8}
NRRD_BYTES = {"signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1, "uint8_t": 1,
              "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2, "int16_t": 2,
              "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2, "uint16_t": 2,
              "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4, "uint32": 4,
              "uint32_t": 4, "longlong": 8, "long long": 8, "long long int": 8, "signed long long": 8,
              "signed long long int": 8, "int64": 8, "int64_t": 8, "ulonglong": 8, "unsigned long long": 8,
              "unsigned long long int": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8}
NRRD_ENCODINGS = {"raw": None, "txt": "text", "text": "text", "ascii": "text", "hex": "hex", "gz": "gzip",
                  "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2"}


# ---- shared ------------------------------------------------------------------------------------------------------

def check_data_size(declared: int, available: int, path: Path) -> None:
    """Uncompressed voxel data: the header must not declare more bytes than the file holds."""
    if declared > available:
        raise VolumeError(f"is truncated or corrupt (its header declares {declared:,} bytes of voxels, the file holds "
                          f"{max(0, available):,})", path)


def check_stream_size(declared: int, open_stream: Callable[[], object], path: Path,
                      decompress: Callable[[bytes], bytes] | None = None) -> None:
    """Compressed voxel data declared beyond STREAM_CHECK_BYTES: decompress it once, in chunks, and refuse it when it
    ends before the declared size (no allocation of the declared size happens here)."""
    if declared <= STREAM_CHECK_BYTES:
        return
    got = 0
    try:
        with open_stream() as fh:  # type: ignore[attr-defined]
            while got < declared:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                got += len(decompress(chunk) if decompress is not None else chunk)
    except (OSError, EOFError, zlib.error, ValueError):
        pass  # a corrupt stream holds less than declared: said below
    if got < declared:
        raise VolumeError(f"is truncated or corrupt (its header declares {declared:,} bytes of voxels, the "
                          f"compressed data holds {got:,})", path)


def check_voxel_sizes(spacing: Sequence[float], path: Path) -> None:
    lo, hi = VOXEL_MM
    for s in spacing:
        if not (math.isfinite(s) and lo <= s <= hi):
            raise VolumeError(f"has a voxel size of {s:g} mm in its header (expected {lo:g} to {hi:g} mm)", path)


def _int(text: str, what: str, path: Path, low: int | None = None, high: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise VolumeError(f"has a header field {what} that is not a whole number ({text.strip()[:40]!r})",
                          path) from None
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        raise VolumeError(f"has a header field {what} of {value} (expected {span})", path)
    return value


def _ints(text: str, what: str, path: Path, low: int) -> list[int]:
    return [_int(t, what, path, low) for t in text.split()]


def _floats(text: str, what: str, path: Path) -> list[float]:
    out = []
    for t in text.replace(",", " ").replace("(", " ").replace(")", " ").split():
        try:
            value = float(t)
        except ValueError:
            raise VolumeError(f"has a header field {what} that is not a list of numbers ({text.strip()[:40]!r})",
                              path) from None
        if not math.isfinite(value):
            raise VolumeError(f"has a header field {what} with a non-finite number ({t})", path)
        out.append(value)
    return out


def _text_header(path: Path, end: Callable[[list[bytes]], bool], end_is: str,
                 eof_ends: bool = False) -> tuple[list[str], int]:
    """The lines of a text header up to and including the line where `end` says it is over (or, with `eof_ends`, the
    end of a short file: a detached header), and its byte length."""
    with open(path, "rb") as fh:
        head = fh.read(MAX_HEADER_BYTES)
    lines, at = [], 0
    for raw in head.split(b"\n"):
        lines.append(raw)
        at += len(raw) + 1
        if end(lines):
            return [ln.decode("latin-1").rstrip("\r") for ln in lines], at
    if eof_ends and len(head) < MAX_HEADER_BYTES:
        return [ln.decode("latin-1").rstrip("\r") for ln in lines], len(head)
    where = "" if len(head) < MAX_HEADER_BYTES else f" within its first {MAX_HEADER_BYTES:,} bytes"
    raise VolumeError(f"has no end to its header ({end_is}){where}", path)


# ---- MetaImage ------------------------------------------------------------------------------------------------

_MET_FIELDS = ("NDims", "DimSize", "ElementNumberOfChannels", "ElementType", "ElementSpacing", "ElementSize", "Offset",
               "Position", "Origin", "TransformMatrix", "Rotation", "Orientation", "CenterOfRotation", "HeaderSize",
               "ElementDataFile", "CompressedData", "CompressedDataSize")

def check_metaimage(path: Path, max_voxels: int) -> None:
    """A MetaImage (.mha/.mhd) header: dimensions 1..5 with positive sizes, a known element type, finite geometry,
    and for data in the file, as many voxel bytes as declared."""
    lines, header_len = _text_header(path, lambda ls: ls[-1].split(b"=", 1)[0].strip().lower() == b"elementdatafile",
                                     "the ElementDataFile line")
    fields: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    fields = {name: fields[name.lower()] for name in _MET_FIELDS if name.lower() in fields}
    ndims = _int(fields.get("NDims", ""), "NDims", path, 1, ITK_MAX_DIMS)
    sizes = _ints(fields.get("DimSize", ""), "DimSize", path, 1)
    if len(sizes) != ndims:
        raise VolumeError(f"has a header with NDims = {ndims} but {len(sizes)} DimSize values", path)
    channels = _int(fields.get("ElementNumberOfChannels", "1"), "ElementNumberOfChannels", path, 1, 64)
    etype = fields.get("ElementType", "")
    if etype not in MET_BYTES:
        raise VolumeError(f"has an ElementType this reader does not know ({etype[:40]!r})", path)
    for key, count in (("ElementSpacing", ndims), ("ElementSize", ndims), ("Offset", ndims), ("Position", ndims),
                       ("Origin", ndims), ("TransformMatrix", ndims * ndims), ("Rotation", ndims * ndims),
                       ("Orientation", ndims * ndims), ("CenterOfRotation", ndims)):
        if key in fields:
            values = _floats(fields[key], key, path)
            if len(values) != count:
                raise VolumeError(f"has {len(values)} {key} values for {ndims} dimensions", path)
            if key == "ElementSpacing":
                check_voxel_sizes(values[:3], path)
    header_size = _int(fields.get("HeaderSize", "0"), "HeaderSize", path, -1)
    voxels = math.prod(sizes) * channels
    if voxels > max_voxels:
        return  # the reader's own size limit says so, naming the sizes
    declared = voxels * MET_BYTES[etype]
    file_size = path.stat().st_size
    if fields.get("ElementDataFile", "").strip().upper() != "LOCAL":
        return  # detached data (.mhd/.raw): that file's size is its reader's to check
    start = header_len + max(0, header_size) if header_size >= 0 else file_size - declared
    if fields.get("CompressedData", "").strip().lower() == "true":
        _int(fields.get("CompressedDataSize", "0"), "CompressedDataSize", path, 0)
        inflate = zlib.decompressobj()
        check_stream_size(declared, lambda: _at(path, start), path, inflate.decompress)
    else:
        check_data_size(declared, file_size - start, path)


def _at(path: Path, offset: int):
    fh = open(path, "rb")
    fh.seek(max(0, offset))
    return fh


# ---- NRRD --------------------------------------------------------------------------------------------------------

def check_nrrd(path: Path, max_voxels: int) -> None:
    """An NRRD header: a known type and encoding, dimension 1..5 with as many positive sizes, and for data attached
    to the file, as many voxel bytes as declared."""
    lines, header_len = _text_header(path, lambda ls: len(ls) > 1 and not ls[-1].strip(b"\r"), "a blank line",
                                     eof_ends=path.name.lower().endswith(".nhdr"))
    if not lines[0].startswith("NRRD000") or lines[0][7:8] not in tuple("12345"):
        raise VolumeError(f"is not an NRRD file this reader knows (first line {lines[0][:20]!r})", path)
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#") or not line.strip() or ":=" in line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise VolumeError(f"has a header line that is not 'field: value' ({line[:40]!r})", path)
        key = key.strip().lower()
        if key in fields:
            raise VolumeError(f"gives the header field {key!r} twice", path)
        fields[key] = value.strip()
    etype = fields.get("type", "").lower()
    if etype not in NRRD_BYTES:
        raise VolumeError(f"has an NRRD type this reader does not know ({etype[:40]!r})", path)
    encoding = fields.get("encoding", "").lower()
    if encoding not in NRRD_ENCODINGS:
        raise VolumeError(f"has an NRRD encoding this reader does not know ({encoding[:40]!r})", path)
    dim = _int(fields.get("dimension", ""), "dimension", path, 1, ITK_MAX_DIMS)
    sizes = _ints(fields.get("sizes", ""), "sizes", path, 1)
    if len(sizes) != dim:
        raise VolumeError(f"has a header with dimension {dim} but {len(sizes)} sizes", path)
    if NRRD_BYTES[etype] > 1 and NRRD_ENCODINGS[encoding] in (None, "gzip", "bzip2") and \
            fields.get("endian", "").lower() not in ("little", "big"):
        raise VolumeError(f"has {etype} voxels but no byte order (endian: little or big) in its header", path)
    if "spacings" in fields:
        check_voxel_sizes([abs(v) for v in _floats(fields["spacings"], "spacings", path)][:3], path)
    if "data file" in fields or "datafile" in fields:
        return  # detached data (.nhdr): that file's size is its reader's to check
    voxels = math.prod(sizes)
    if voxels > max_voxels:
        return  # the reader's own size limit says so, naming the sizes
    declared = voxels * NRRD_BYTES[etype]
    skip = _int(fields.get("byte skip", fields.get("byteskip", "0")), "byte skip", path, -1)
    _int(fields.get("line skip", fields.get("lineskip", "0")), "line skip", path, 0, 10_000)
    kind = NRRD_ENCODINGS[encoding]
    if kind is None:
        start = header_len + skip if skip >= 0 else path.stat().st_size - declared
        check_data_size(declared, path.stat().st_size - start, path)
    elif kind == "gzip":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        check_stream_size(declared, lambda: _at(path, header_len), path, inflate.decompress)
    elif kind == "bzip2":
        check_stream_size(declared, lambda: _at(path, header_len), path, bz2.BZ2Decompressor().decompress)
    elif kind in ("text", "hex"):  # at least one character per voxel
        check_data_size(voxels, path.stat().st_size - header_len, path)


# ---- NIfTI -----------------------------------------------------------------------------------------------------

def check_nifti(img, path: Path) -> None:
    """A loaded (not yet read) NIfTI image: the declared voxel bytes must be there after the data offset (for
    .nii.gz checked by decompressing once when the claim is large). Its affine is checked by the reader."""
    header = img.header
    dtype = header.get_data_dtype()
    if dtype.kind not in "biuf":
        what = "complex" if dtype.kind == "c" else "RGB or other multi-component"
        raise VolumeError(f"has {what} voxels (NIfTI datatype {int(header['datatype'])}), not a scalar MRI volume",
                          path)
    try:
        offset = int(img.dataobj.offset)
        declared = math.prod(int(s) for s in img.shape) * header.get_data_dtype().itemsize
    except (OverflowError, ValueError, TypeError):
        raise VolumeError("has a header whose data offset or dimensions cannot be used", path) from None
    if str(path).lower().endswith(".gz"):
        check_stream_size(offset + declared, lambda: gzip.open(path, "rb"), path)
    else:
        check_data_size(offset + declared, path.stat().st_size, path)


# ---- DICOM series ----------------------------------------------------------------------------------------------

def check_dicom_series(files: Sequence[str], folder: Path, series_uid: str, max_voxels: int) -> None:
    """The slices of one DICOM series must agree: orientation, pixel spacing and size the same in every file, each
    at its own position, evenly spaced along the slice normal, each holding the pixel bytes its size declares. A
    series that fails this would be read as a volume with the wrong geometry (a missing slice stretches it, a
    duplicate or a tilted slice scrambles it), or make the reader allocate what the files do not hold."""
    import numpy as np
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    where = f"DICOM series {series_uid}"
    orient = spacing = size = None
    positions = []
    for f in files:
        name = Path(f).name
        try:
            ds = dcmread(f, defer_size=256)  # the pixel data's length, not its bytes
            o = [float(v) for v in ds.ImageOrientationPatient]
            p = [float(v) for v in ds.ImagePositionPatient]
            s = [float(v) for v in ds.PixelSpacing]
            rc = (int(ds.Rows), int(ds.Columns))
            frame_bytes = rc[0] * rc[1] * int(ds.get("SamplesPerPixel", 1) or 1) * \
                max(1, int(ds.get("BitsAllocated", 16) or 16)) // 8 * max(1, int(ds.get("NumberOfFrames", 1) or 1))
            pixels = ds.get_item("PixelData") if "PixelData" in ds else None
        except AttributeError as exc:
            missing = str(exc).split("'")[-2] if "'" in str(exc) else "a geometry attribute"
            raise VolumeError(f"{where}: slice {name} has no {missing}, so its geometry is unknown", folder) from None
        except (InvalidDicomError, ValueError, TypeError, OSError, EOFError):
            raise VolumeError(f"{where}: slice {name} has an unreadable geometry (orientation, position, pixel "
                              "spacing or size)", folder) from None
        if len(o) != 6 or len(p) != 3 or len(s) != 2 or not all(map(math.isfinite, o + p + s)):
            raise VolumeError(f"{where}: slice {name} has an orientation, position or pixel spacing that is not a "
                              "list of finite numbers", folder)
        check_voxel_sizes(s, folder)
        if rc[0] * rc[1] * len(files) > max_voxels:
            raise VolumeError(f"{where} is too large ({rc[0]}×{rc[1]}×{len(files)} voxels, limit {max_voxels:,}); "
                              "crop or downsample it first", folder)
        length = getattr(pixels, "length", None)
        if pixels is None or (length is not None and length != 0xFFFFFFFF and length < frame_bytes):
            held = "no pixel data" if pixels is None else f"{length:,} pixel bytes"
            raise VolumeError(f"{where}: slice {name} holds {held}, less than its {rc[0]}×{rc[1]} size "
                              f"declares ({frame_bytes:,} bytes)", folder)
        row, col = np.array(o[:3]), np.array(o[3:])
        if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
            raise VolumeError(f"{where}: slice {name} has an orientation whose row and column are not orthogonal "
                              "unit vectors", folder)
        if orient is None:
            orient, spacing, size = o, s, rc
        elif not (np.allclose(o, orient, atol=1e-3) and np.allclose(s, spacing, rtol=1e-3) and rc == size):
            raise VolumeError(f"{where}: slice {name} differs from the first slice in orientation, pixel spacing or "
                              "size; the slices do not form one volume", folder)
        positions.append(p)
    if orient is None:
        return
    normal = np.cross(np.array(orient[:3]), np.array(orient[3:]))
    along = np.sort(np.array(positions) @ normal)  # (n,) mm along the slice normal
    steps = np.diff(along)
    if len(steps) and steps.min() < 1e-3 * max(1.0, float(np.abs(steps).max())):
        raise VolumeError(f"{where}: {len(positions)} slices but only {len(np.unique(np.round(along, 3)))} "
                          "distinct positions (duplicated slices)", folder)
    if len(steps) > 1 and (steps.max() - steps.min()) > 0.05 * float(np.median(steps)) + 1e-3:
        raise VolumeError(f"{where}: its slices are not evenly spaced (steps from {steps.min():g} to "
                          f"{steps.max():g} mm): a slice is missing or out of place", folder)
