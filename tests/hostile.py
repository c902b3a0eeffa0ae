"""Hypothesis strategies for scans whose headers lie, and the outcome every reader must have for them.

Each strategy starts from a structurally valid small scan and then lies in the fields the formats let a writer get
wrong: dimensions, datatypes, scaling, offsets, affines and orientation, encodings, byte orders, slice positions,
transfer syntaxes, nested or duplicate or escaping zip entries, bombs. A `Hostile` is what a user (or a client of the
service) would hand over: one file, a DICOM series folder, or a zip.

The only acceptable outcomes (`Outcome`): a record, or the documented one-sentence error naming the file (with its
HTTP status in the service). The tests (tests/test_io_fuzz.py, tests/serve/test_fuzz.py,
tests/reporting/test_report_fuzz.py) and the soak (bench/fuzz.py) share these.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

# ---- what is handed over -----------------------------------------------------------------------------------


@dataclass
class Hostile:
    """kind: nifti1 | nifti2 | nrrd | mha | dicom | zip. `files` maps relative paths to bytes: one file, or the slices
    of a DICOM series folder; `name` is the file (or folder) a user would name."""

    kind: str
    name: str
    files: dict[str, bytes]
    lies: tuple[str, ...] = ()

    def write(self, folder: Path) -> Path:
        """Put it into `folder`; returns what a reader is pointed at (the file, or the series folder)."""
        for rel, data in self.files.items():
            p = folder / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return folder / self.name

    def upload(self) -> tuple[str, bytes]:
        """(file name, body) as the service takes it: a DICOM series as one zip."""
        if self.kind == "dicom":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for rel, data in self.files.items():
                    zf.writestr(rel, data)
            return f"{self.name}.zip", buf.getvalue()
        (rel, data), = self.files.items()
        return rel, data

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: the lies and the sizes
        return f"Hostile({self.kind}, {self.name!r}, lies={self.lies}, sizes={[len(b) for b in self.files.values()]})"


# ---- outcomes ----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:e[+-]?\d+)?(?!\w)")


@dataclass
class Outcomes:
    """Counts of outcomes per target and kind: 'record' or the error sentence with its numbers blanked (and status)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, target: str, kind: str, outcome: str) -> None:
        self.counts[(target, kind, outcome)] += 1

    def table(self) -> list[dict]:
        return [{"target": t, "kind": k, "outcome": o, "n": n} for (t, k, o), n in sorted(self.counts.items())]


def sentence_class(message: str, name: str) -> str:
    """An error sentence as a class: the file's name and parenthesised library detail dropped, numbers as #."""
    text = message.replace(name, "<file>", 1)
    text = re.sub(r"\(.*\)", "(…)", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    return _NUMBER.sub("#", text)[:140]


def one_sentence(message: str, name: str) -> str | None:
    """What is wrong with an error message as the user sees it, or None: one line, naming the file, no traceback,
    no Python object reprs."""
    if "\n" in message.strip():
        return "more than one line"
    if "Traceback" in message or "<built-in" in message or " object at 0x" in message:
        return "a traceback or an object repr"
    if name not in message:
        return f"does not name {name!r}"
    return None


# ---- NIfTI-1 / NIfTI-2 -----------------------------------------------------------------------------------------

_DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64, np.int8, np.uint16, np.int64]
_NIFTI_CODES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 3, 17, 9999, -4]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf")]
_DIMS = [0, 1, 2, 3, 7, -1, -32768, 32767, 1000]


@st.composite
def _small_array(draw, max_side: int = 6, four_d: bool = True):
    ndim = draw(st.sampled_from([3, 3, 3, 4] if four_d else [3]))
    shape = tuple(draw(st.integers(2, max_side)) for _ in range(ndim))
    dtype = draw(st.sampled_from(_DTYPES))
    seed = draw(st.integers(0, 2**16))
    data = np.random.default_rng(seed).integers(0, 100, size=shape).astype(dtype)
    if draw(st.booleans()):
        data.flat[0] = 0  # keep a valid scan possible: not constant
        data.flat[-1] = 99
    return data


@st.composite
def nifti_files(draw, version: int | None = None) -> Hostile:
    """A NIfTI-1 or NIfTI-2 single file (.nii / .nii.gz) with some header fields lying."""
    import nibabel as nib

    version = version or draw(st.sampled_from([1, 2]))
    data = draw(_small_array())
    affine = np.diag([draw(st.sampled_from([1.0, 2.0, 0.5])) for _ in range(3)] + [1.0])
    if draw(st.booleans()):
        data = data.astype(data.dtype.newbyteorder(">"))  # a big-endian file
    cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    img = cls(data, affine, dtype=data.dtype)
    raw = bytearray(img.to_bytes())
    hdr = img.header.copy()
    sa = hdr.structarr
    lies: list[str] = []
    for fld in draw(st.lists(st.sampled_from(
            ["dim0", "dim", "datatype", "bitpix", "vox_offset", "scl_slope", "scl_inter", "pixdim", "qfac", "qform_code",
             "sform_code", "quatern", "qoffset", "srow", "magic", "sizeof_hdr", "intent_code", "xyzt_units",
             "slice_code", "extension"]), max_size=4, unique=True)):
        lies.append(fld)
        if fld == "dim0":
            sa["dim"][0] = draw(st.sampled_from([-1, 0, 1, 2, 5, 7, 8, 9]))
        elif fld == "dim":
            sa["dim"][draw(st.integers(1, 7))] = draw(st.sampled_from(_DIMS + ([2**40, -2**40] if version == 2 else [])))
        elif fld == "datatype":
            sa["datatype"] = draw(st.sampled_from(_NIFTI_CODES))
        elif fld == "bitpix":
            sa["bitpix"] = draw(st.sampled_from([0, 1, 7, 8, 16, 64, 128, -8]))
        elif fld == "vox_offset":
            options = [0.0, 1.0, 347.0, 348.0, 351.0, 353.0, 1e6, -16.0] + ([float("nan"), 1e30] if version == 1 else [])
            sa["vox_offset"] = draw(st.sampled_from(options))
        elif fld in ("scl_slope", "scl_inter"):
            sa[fld] = draw(st.sampled_from(_FLOATS))
        elif fld == "pixdim":
            sa["pixdim"][draw(st.integers(1, 4))] = draw(st.sampled_from(_FLOATS))
        elif fld == "qfac":
            sa["pixdim"][0] = draw(st.sampled_from([0.0, 1.0, -1.0, 2.0, float("nan")]))
        elif fld in ("qform_code", "sform_code"):
            sa[fld] = draw(st.sampled_from([0, 1, 2, 3, 4, 5, -1, 255]))
        elif fld == "quatern":
            sa[draw(st.sampled_from(["quatern_b", "quatern_c", "quatern_d"]))] = draw(st.sampled_from(_FLOATS))
        elif fld == "qoffset":
            sa[draw(st.sampled_from(["qoffset_x", "qoffset_y", "qoffset_z"]))] = draw(st.sampled_from(_FLOATS))
        elif fld == "srow":
            row = draw(st.sampled_from(["srow_x", "srow_y", "srow_z"]))
            sa[row][draw(st.integers(0, 3))] = draw(st.sampled_from(_FLOATS))
            if draw(st.booleans()):
                sa[row][:3] = 0  # a singular matrix
        elif fld == "magic":
            sa["magic"] = draw(st.sampled_from([b"ni1", b"n+2", b"nx1", b"", b"n+1\x00extra"] if version == 1
                                               else [b"ni2\x00\r\n\x1a\n", b"n+1", b"\x00" * 8]))
        elif fld == "sizeof_hdr":
            sa["sizeof_hdr"] = draw(st.sampled_from([0, 347, 349, 540, 348, 1 << 24]))
        elif fld == "intent_code":
            sa["intent_code"] = draw(st.sampled_from([1001, 1002, 1007, 2003, 2005, -1]))
        elif fld == "xyzt_units":
            sa["xyzt_units"] = draw(st.sampled_from([0, 1, 2, 3, 8, 255]))
        elif fld == "slice_code":
            sa["slice_code"] = draw(st.sampled_from([0, 1, 6, 7, 99]))
    header = sa.tobytes()
    raw[: len(header)] = header
    if "extension" in lies:  # an extension flag with a lying size
        ext_at = len(header)
        raw[ext_at: ext_at + 4] = b"\x01\x00\x00\x00"
        raw[ext_at + 4: ext_at + 4] = struct.pack("<ii", draw(st.sampled_from([0, 8, 15, 16, 1 << 20, -16])), 4)
    raw = bytes(raw)
    cut = draw(st.sampled_from(["none", "none", "none", "data", "header", "garbage"]))
    if cut == "data":
        raw = raw[: draw(st.integers(len(header) + 4, max(len(header) + 4, len(raw) - 1)))]
    elif cut == "header":
        raw = raw[: draw(st.integers(0, len(header) - 1))]
    elif cut == "garbage":
        raw += bytes(draw(st.binary(min_size=1, max_size=64)))
    if cut != "none":
        lies.append(f"cut:{cut}")
    gz = draw(st.booleans())
    if gz:
        raw = gzip.compress(raw, mtime=0)
        if draw(st.integers(0, 4)) == 0:
            raw = raw[: max(10, len(raw) // 2)]
            lies.append("cut:gzip")
    name = f"scan.nii{'.gz' if gz else ''}"
    return Hostile(f"nifti{version}", name, {name: raw}, tuple(lies))


# ---- NRRD ----------------------------------------------------------------------------------------------------------

_NRRD_TYPES = {"uchar": "u1", "signed char": "i1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4",
               "float": "f4", "double": "f8", "long long": "i8", "int64": "i8"}


@st.composite
def nrrd_files(draw) -> Hostile:
    """An NRRD file with attached data, valid but for up to three lying fields."""
    lies = draw(st.lists(st.sampled_from(
        ["type", "endian", "dimension", "sizes", "sizes:count", "space directions", "space directions:syntax",
         "space origin", "spacings", "encoding", "kinds", "skip", "duplicate field", "data:short", "data:long",
         "data:empty", "magic", "no blank line"]), max_size=3, unique=True))
    data = draw(_small_array(four_d=False))
    tname = draw(st.sampled_from(list(_NRRD_TYPES)))
    if "type" in lies:
        tname = draw(st.sampled_from(["block", "half", "int128", "", "float;"]))
    endian = draw(st.sampled_from(["little", "big"]))
    if "endian" in lies:
        endian = draw(st.sampled_from(["middle", None, "BIG"]))
    arr = data.astype(np.dtype(_NRRD_TYPES.get(tname, "u1")).newbyteorder(">" if endian == "big" else "<"))
    dim, sizes = arr.ndim, list(arr.shape)
    if "dimension" in lies:
        dim = draw(st.sampled_from([0, 1, 2, 4, 5, 17, -1]))
    if "sizes" in lies:
        sizes[draw(st.integers(0, 2))] = draw(st.sampled_from([0, 1, -3, 65536, 10**6, 10**12]))
    if "sizes:count" in lies:
        sizes = sizes[:-1]
    fields: list[tuple[str, str]] = [("type", tname), ("dimension", str(dim)), ("sizes", " ".join(map(str, sizes)))]
    if "spacings" in lies:
        fields.append(("spacings", " ".join(repr(draw(st.sampled_from(_FLOATS))) for _ in range(3))))
    else:
        fields.append(("space", draw(st.sampled_from(["left-posterior-superior", "right-anterior-superior",
                                                      "RAS", "LPS"]))))
        vecs = [[2.0 if i == j else 0.0 for j in range(3)] for i in range(3)]
        if "space directions" in lies:
            vecs[draw(st.integers(0, 2))] = [draw(st.sampled_from(_FLOATS)) for _ in range(3)]
        text = " ".join("(" + ",".join(repr(float(v)) for v in vec) + ")" for vec in vecs)
        if "space directions:syntax" in lies:
            text = draw(st.sampled_from(["none (1,0,0) (0,1,0)", "(1,0) (0,1) (0,0)", "(a,b,c) (1,0,0) (0,1,0)", ""]))
        fields.append(("space directions", text))
        origin = [draw(st.sampled_from(_FLOATS)) for _ in range(3)] if "space origin" in lies else [0.0] * 3
        fields.append(("space origin", "(" + ",".join(repr(v) for v in origin) + ")"))
    encoding = draw(st.sampled_from(["raw", "raw", "gzip", "gz", "ascii", "text", "hex", "bzip2"]))
    if "encoding" in lies:
        encoding = draw(st.sampled_from(["zstd", "lzma", "raw;gzip", "RAW"]))
    fields.append(("encoding", encoding))
    if endian is not None:
        fields.append(("endian", endian))
    if "kinds" in lies:
        fields.append(("kinds", draw(st.sampled_from(["RGB-color domain domain", "list domain domain", "space space",
                                                      "garbage"]))))
    if "skip" in lies:
        fields.append((draw(st.sampled_from(["byte skip", "byteskip", "line skip", "lineskip"])),
                       str(draw(st.sampled_from([-1, 0, 3, 10**6])))))
    if "duplicate field" in lies:
        fields.insert(draw(st.integers(0, len(fields))), draw(st.sampled_from(
            [("sizes", "2 2 2"), ("type", "double"), ("dimension", "3"), ("encoding", "raw")])))
    payload = arr.tobytes(order="F")
    if encoding in ("gzip", "gz"):
        payload = gzip.compress(payload, mtime=0)
    elif encoding in ("ascii", "text"):
        payload = " ".join(str(v) for v in arr.ravel(order="F")).encode()
    elif encoding == "hex":
        payload = payload.hex().encode()
    elif encoding == "bzip2":
        import bz2

        payload = bz2.compress(payload)
    if "data:short" in lies:
        payload = payload[: draw(st.integers(0, max(0, len(payload) - 1)))]
    if "data:long" in lies:
        payload += b"\x00" * draw(st.integers(1, 64))
    if "data:empty" in lies:
        payload = b""
    magic = draw(st.sampled_from(["NRRD0001", "NRRD0009", "NRRD"])) if "magic" in lies else "NRRD0004"
    text = magic + "\n# brain3d fuzz\n" + "".join(f"{k}: {v}\n" for k, v in fields)
    blank = "" if "no blank line" in lies else "\n"
    return Hostile("nrrd", "scan.nrrd", {"scan.nrrd": (text + blank).encode() + payload}, tuple(lies))


# ---- MetaImage -------------------------------------------------------------------------------------------------

_MET_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
              "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8", "MET_ULONG_LONG": "u8",
              "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}


@st.composite
def mha_files(draw) -> Hostile:
    """A MetaImage (.mha, data inside), valid but for up to three lying fields."""
    import zlib

    lies = draw(st.lists(st.sampled_from(
        ["ObjectType", "ElementType", "NDims", "DimSize", "ElementSpacing", "TransformMatrix", "singular matrix",
         "Offset", "channels", "orientation", "HeaderSize", "compressed", "CompressedDataSize", "data:short",
         "data:long", "byte order"]), max_size=3, unique=True))
    data = draw(_small_array())
    tname = draw(st.sampled_from(list(_MET_TYPES)))
    if "ElementType" in lies:
        tname = draw(st.sampled_from(["MET_STRING", "MET_NONE", "FLOAT", "MET_OTHER"]))
    msb = draw(st.booleans())
    arr = data.astype(np.dtype(_MET_TYPES.get(tname, "u1")).newbyteorder(">" if msb else "<"))
    if "byte order" in lies:
        msb = not msb
    ndims, dims = arr.ndim, list(arr.shape)
    if "NDims" in lies:
        ndims = draw(st.sampled_from([0, 1, 2, 4, 5, 9, -1]))
    if "DimSize" in lies:
        dims[draw(st.integers(0, len(dims) - 1))] = draw(st.sampled_from([0, 1, -2, 65536, 10**7, 10**12]))
    n = arr.ndim
    spacing = [1.0] * n
    if "ElementSpacing" in lies:
        spacing[0] = draw(st.sampled_from(_FLOATS))
    matrix = [float(v) for v in np.eye(n).ravel()]
    if "TransformMatrix" in lies:
        matrix[draw(st.integers(0, len(matrix) - 1))] = draw(st.sampled_from(_FLOATS))
    if "singular matrix" in lies:
        matrix = [0.0] * len(matrix)
    offset = [draw(st.sampled_from(_FLOATS)) for _ in range(n)] if "Offset" in lies else [0.0] * n
    fields = [("ObjectType", draw(st.sampled_from(["Mesh", "Scene", ""])) if "ObjectType" in lies else "Image"),
              ("NDims", ndims), ("BinaryData", "True"),
              (draw(st.sampled_from(["ElementByteOrderMSB", "BinaryDataByteOrderMSB"])), str(msb)),
              ("TransformMatrix", " ".join(map(repr, matrix))), ("Offset", " ".join(map(repr, offset))),
              ("ElementSpacing", " ".join(map(repr, spacing))), ("DimSize", " ".join(map(str, dims)))]
    if "channels" in lies:
        fields.append(("ElementNumberOfChannels", draw(st.sampled_from([0, 3, -1, 1000]))))
    if "orientation" in lies:
        fields.append(("AnatomicalOrientation", draw(st.sampled_from(["RAI", "LPS", "QQQ", "RRR", ""]))))
    if "HeaderSize" in lies:
        fields.append(("HeaderSize", draw(st.sampled_from([-1, 0, 5, 10**6]))))
    payload = arr.tobytes()
    if "compressed" in lies or "CompressedDataSize" in lies:
        payload = zlib.compress(payload)
        fields.append(("CompressedData", "True"))
        size = draw(st.sampled_from([0, 1, 10**9])) if "CompressedDataSize" in lies else len(payload)
        fields.append(("CompressedDataSize", size))
    fields.append(("ElementType", tname))
    if "data:short" in lies:
        payload = payload[: draw(st.integers(0, max(0, len(payload) - 1)))]
    if "data:long" in lies:
        payload += b"\x7f" * draw(st.integers(1, 64))
    text = "".join(f"{k} = {v}\n" for k, v in fields) + "ElementDataFile = LOCAL\n"
    return Hostile("mha", "scan.mha", {"scan.mha": text.encode() + payload}, tuple(lies))


# ---- DICOM series ------------------------------------------------------------------------------------------------

TRANSFER_SYNTAXES = {
    "implicit LE": "1.2.840.10008.1.2",
    "explicit LE": "1.2.840.10008.1.2.1",
    "explicit BE": "1.2.840.10008.1.2.2",
    "deflated": "1.2.840.10008.1.2.1.99",
    "JPEG baseline (lying)": "1.2.840.10008.1.2.4.50",
    "JPEG lossless (lying)": "1.2.840.10008.1.2.4.70",
    "JPEG 2000 (lying)": "1.2.840.10008.1.2.4.90",
    "RLE (lying)": "1.2.840.10008.1.2.5",
    "unknown": "1.2.3.4.5.6.7",
}


_ENCAPSULATED = {v for k, v in TRANSFER_SYNTAXES.items() if "lying" in k}


def _dicom_slice(k: int, n: int, rows: int, cols: int, pixels: np.ndarray, series: str, syntax: str,
                 lies: set[str], draw) -> bytes:
    """One MR slice as a DICOM Part 10 file."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID

    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4")
    meta.MediaStorageSOPInstanceUID = UID(f"1.2.826.0.1.3680043.8.498.7.{k + 1}")
    meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = "MR", "FUZZ", "Fuzz^Test"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.InstanceNumber = k + 1
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 2.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
    ds.PixelData = pixels.astype("<u2").tobytes()
    if "orientation" in lies and k == n // 2:
        ds.ImageOrientationPatient = draw(st.sampled_from([[0, 1, 0, 1, 0, 0], [1, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0],
                                                           [1, 0, 0, 0, 0.7071, 0.7071]]))
    if "spacing" in lies:
        ds.ImagePositionPatient = [0.0, 0.0, [0.0, 2.0, 3.0, 9.0, 9.5, 30.0, 31.0, 60.0][k % 8] + 100 * (k // 8)]
    if "same position" in lies:
        ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    if "no position" in lies and k % 2 == 0:
        del ds.ImagePositionPatient
    if "no orientation" in lies:
        del ds.ImageOrientationPatient
    if "no spacing" in lies:
        del ds.PixelSpacing
    if "bad numbers" in lies and k == 0:
        ds.PixelSpacing = ["nan", "0"]
    if "rows lie" in lies and k == 0:
        ds.Rows = draw(st.sampled_from([0, 1, rows + 1, 65535]))
    if "bits" in lies:
        ds.BitsAllocated = draw(st.sampled_from([1, 8, 12, 32, 64]))
    if "rgb" in lies:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, "RGB"
    if "signed" in lies:
        ds.PixelRepresentation = 1
    if "rescale" in lies:
        ds.RescaleSlope = draw(st.sampled_from([0.0, -1.0, 1e30]))
    if "frames" in lies:
        ds.NumberOfFrames = draw(st.sampled_from([0, 2, 1000]))
    if "no pixels" in lies and k == n - 1:
        del ds.PixelData
    if "no series uid" in lies and k == 0:
        del ds.SeriesInstanceUID
    if "PixelData" in ds and syntax in _ENCAPSULATED:  # the fragment claims the syntax's codec, holds raw samples
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([ds.PixelData])
        ds["PixelData"].VR = "OB"
    little = syntax != TRANSFER_SYNTAXES["explicit BE"]
    implicit = syntax == TRANSFER_SYNTAXES["implicit LE"]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, implicit_vr=implicit, little_endian=little)
    return buf.getvalue()


@st.composite
def dicom_series(draw) -> Hostile:
    """A DICOM series folder of 2..6 slices with missing, duplicated or out-of-order slices, inconsistent
    orientation or spacing, or an odd transfer syntax."""
    n = draw(st.integers(2, 6))
    rows, cols = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    volume = rng.integers(0, 4000, size=(n, rows, cols))
    syntax_name = draw(st.sampled_from(["explicit LE"] * 3 + list(TRANSFER_SYNTAXES)))
    lies = set(draw(st.lists(st.sampled_from(
        ["orientation", "spacing", "same position", "no position", "no orientation", "no spacing", "bad numbers",
         "rows lie", "bits", "rgb", "signed", "rescale", "frames", "no pixels", "no series uid", "missing slice",
         "duplicate slice", "shuffled", "two series", "junk file", "truncated slice"]), max_size=3, unique=True)))
    series = "1.2.826.0.1.3680043.8.498.5"
    files = {f"{k:03d}.dcm": _dicom_slice(k, n, rows, cols, volume[k], series, TRANSFER_SYNTAXES[syntax_name],
                                          lies, draw) for k in range(n)}
    names = list(files)
    if "missing slice" in lies and n > 2:
        del files[names[draw(st.integers(1, n - 2))]]
    if "duplicate slice" in lies:
        files["dup.dcm"] = files[names[0]]
    if "shuffled" in lies:
        order = draw(st.permutations(list(files)))
        files = {f"{i:03d}.dcm": files[old] for i, old in enumerate(order)}
    if "two series" in lies:
        other = "1.2.826.0.1.3680043.8.498.6"
        files.update({f"b{k}.dcm": _dicom_slice(k, 2, rows, cols, volume[k], other, TRANSFER_SYNTAXES["explicit LE"],
                                                set(), draw) for k in range(2)})
    if "junk file" in lies:
        files["notes.dcm"] = bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff"
    if "truncated slice" in lies:
        victim = sorted(files)[0]
        files[victim] = files[victim][: draw(st.integers(132, len(files[victim]) - 1))]
    lies_t = (f"syntax:{syntax_name}", *sorted(lies))
    return Hostile("dicom", "series", {f"series/{name}": data for name, data in files.items()}, lies_t)


# ---- zips (the service's DICOM upload) ---------------------------------------------------------------------------

def _member(name: str, data: bytes, method: int = zipfile.ZIP_DEFLATED, mode: int | None = None) -> tuple:
    return name, data, method, mode


@st.composite
def zip_files(draw, max_unpacked: int = 8 << 20) -> Hostile:
    """A zip as the service takes a DICOM series: nested, escaping or duplicate names, symlinks, bombs, corrupt."""
    base = draw(dicom_series())
    members = [_member(f"export/{Path(rel).name}", data) for rel, data in base.files.items()]
    lies = list(base.lies)
    for lie in draw(st.lists(st.sampled_from(["nested zip", "traversal", "absolute", "backslash", "duplicate name",
                                               "symlink", "bomb", "directory", "empty member", "stored", "many members",
                                               "crc", "truncated", "method", "encrypted flag"]), max_size=3,
                             unique=True)):
        lies.append(lie)
        if lie == "nested zip":
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as zf:
                for name, data, *_ in members:
                    zf.writestr(name, data)
            members = [_member("inner.zip", inner.getvalue())] + members[: draw(st.integers(0, len(members)))]
        elif lie == "traversal":
            members.append(_member(draw(st.sampled_from(["../../evil.dcm", "a/../../../evil.dcm", "../x"])),
                                   members[0][1]))
        elif lie == "absolute":
            members.append(_member(draw(st.sampled_from(["/tmp/brain3d-evil.dcm", "/etc/evil.dcm", "C:/evil.dcm"])),
                                   members[0][1]))
        elif lie == "backslash":
            members.append(_member("..\\..\\evil.dcm", members[0][1]))
        elif lie == "duplicate name":
            members.append(_member(members[0][0], members[-1][1]))
        elif lie == "symlink":
            members.append(_member("link.dcm", draw(st.sampled_from([b"/etc/passwd", b"../../../../etc/shadow",
                                                                     b"export"])), zipfile.ZIP_STORED,
                                   stat.S_IFLNK | 0o777))
        elif lie == "bomb":
            members.append(_member("bomb.dcm", bytes(max_unpacked + draw(st.sampled_from([1, 1 << 20])))))
        elif lie == "directory":
            members.append(_member("export/sub/", b""))
        elif lie == "empty member":
            members.append(_member("empty.dcm", b""))
        elif lie == "stored":
            members = [(n, d, zipfile.ZIP_STORED, m) for n, d, _, m in members]
        elif lie == "many members":
            members += [_member(f"m{i}.txt", b"x") for i in range(draw(st.sampled_from([10, 30])))]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    raw = bytearray(buf.getvalue())
    if "crc" in lies and len(raw) > 60:
        raw[40] ^= 0xFF  # inside the first member's data
    if "method" in lies:
        raw[8:10] = struct.pack("<H", 99)  # the first local header's compression method: unknown
    if "encrypted flag" in lies:
        raw[6:8] = struct.pack("<H", 1)
    if "truncated" in lies:
        raw = raw[: draw(st.integers(4, max(4, len(raw) - 1)))]
    return Hostile("zip", "upload.zip", {"upload.zip": bytes(raw)}, tuple(lies))


def any_file() -> st.SearchStrategy[Hostile]:
    """Any single-file format or a DICOM series (what the library readers and `brain3d report` take)."""
    return st.one_of(nifti_files(1), nifti_files(2), nrrd_files(), mha_files(), dicom_series())


KINDS = {"nifti1": lambda: nifti_files(1), "nifti2": lambda: nifti_files(2), "nrrd": nrrd_files, "mha": mha_files,
         "dicom": dicom_series, "zip": zip_files}


# ---- the checks every target shares ------------------------------------------------------------------------------

HANG_S = 60.0  # an example taking longer than this counts as a hung reader or worker


def within(seconds: float, fn, *args, **kwargs):
    """fn(*args) in a thread; AssertionError when it has not returned after `seconds` (a hang, not just slowness)."""
    from concurrent.futures import ThreadPoolExecutor, TimeoutError as Timeout

    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=seconds)
    except Timeout:
        raise AssertionError(f"still running after {seconds:.0f} s: hung") from None
    finally:
        pool.shutdown(wait=False)


class Memory:
    """Peak resident memory gained inside a block (Linux: VmHWM after resetting it via /proc/self/clear_refs);
    `gained_mb` is None where that cannot be measured."""

    def __enter__(self) -> "Memory":
        self.gained_mb = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._before = self._kb("VmRSS")
        except OSError:
            self._before = None
        return self

    def __exit__(self, *exc) -> None:
        if self._before is not None:
            self.gained_mb = (self._kb("VmHWM") - self._before) / 1024

    @staticmethod
    def _kb(key: str) -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))


MAX_GAIN_MB = 200  # a tiny file may never make a reader allocate more than this


def read_outcome(h: Hostile, folder: Path) -> str:
    """Read `h` with the library reader; the outcome class, or AssertionError for anything unacceptable: another
    exception, an error that is not one sentence naming the file, a volume that is not a finite 3D array, a file
    left behind, a hang, or a reader that allocated far more than the file holds."""
    from brain3d.errors import VolumeError
    from brain3d.io import read_volume

    target = h.write(folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    with Memory() as mem:
        try:
            vol = within(HANG_S, read_volume, target)
        except VolumeError as exc:
            problem = one_sentence(str(exc), str(target))
            assert problem is None and str(exc).startswith(f"{target}: "), f"{problem}: {exc}"
            outcome = sentence_class(str(exc), str(target))
        else:
            assert vol.data.ndim == 3 and min(vol.shape) >= 2 and vol.data.dtype == np.float32, vol.data.shape
            assert np.isfinite(vol.data).all() and np.isfinite(vol.affine).all()
            outcome = "record"
    assert mem.gained_mb is None or mem.gained_mb < MAX_GAIN_MB, f"allocated {mem.gained_mb:.0f} MB for {h!r}"
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before, "the reader left files behind"
    return outcome


ESCAPES = ("/tmp/brain3d-evil.dcm", "/etc/evil.dcm", "/tmp/evil.dcm")  # where the zip strategy's absolute names point
SERVE_STATUSES = {200, 400, 413, 415, 422, 507}  # 503 only under load or a drain, which these examples never make


def serve_outcome(client, app, h: Hostile, watch: Path) -> str:
    """POST `h` to /v1/reports; the outcome class (with status), or AssertionError: a status outside the documented
    ones, a body that is not a record or one sentence, a server path in it, a file left in the private folder or
    written anywhere under `watch` outside it, a hang."""
    from brain3d.reporting.schema import ReportRecord

    name, body = h.upload()
    before = sorted(str(p) for p in watch.rglob("*"))
    r = within(HANG_S, client.post, "/v1/reports", files={"files": (name, body)})
    private = app.state.service.tmp_root
    assert os.listdir(private) == [], f"left in the private folder: {os.listdir(private)}"
    assert sorted(str(p) for p in watch.rglob("*")) == before, "a file was written outside the private folder"
    assert not any(Path(p).exists() for p in ESCAPES), "a zip member escaped to an absolute path"
    assert r.status_code in SERVE_STATUSES, (r.status_code, r.text[:300])
    if r.status_code == 200:
        rec = ReportRecord.model_validate(r.json())
        assert rec.error is None and rec.report is not None
        return "record (200)"
    error = r.json()["error"]
    assert str(private) not in error and "/tmp/" not in error, error
    assert "\n" not in error.strip() and "Traceback" not in error and " object at 0x" not in error, error
    return f"{sentence_class(error, name)} ({r.status_code})"


def report_outcome(run, h: Hostile, folder: Path) -> str:
    """`brain3d report` on `h` (run(args) -> (exit code, stdout, stderr)); the outcome class, or AssertionError: a
    traceback, an exit code other than 0 (a record), 2 or 3 (one sentence naming the file), or an error sentence
    that is not one line."""
    import json as _json

    target = h.write(folder / "in")
    code, out, err = within(HANG_S, run, [str(target), "--out", str(folder / "out")])
    assert "Traceback" not in err and " object at 0x" not in err, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    if code == 0:
        (rec,) = [_json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert rec["error"] is None and rec["report"] is not None
        return "record (exit 0)"
    assert code in (2, 3) and len(errors) == 1, (code, err[-2000:])
    sentence = errors[0][len("error: "):]
    assert one_sentence(sentence, str(target)) is None and sentence.startswith(str(target)), sentence
    if code == 3:  # the scan's record carries the same sentence
        (rec,) = [_json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert rec["error"] == sentence, (rec["error"], sentence)
    return f"{sentence_class(sentence, str(target))} (exit {code})"
