"""Atomic file output and stable hashing: results are never half-written, and ids hash the same in every run.

A full disk or a read-only folder becomes one `OutputError` naming the folder (never a half-written file or a
traceback); what was finished before stays, so a rerun after space is freed resumes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from brain3d.errors import OutputError

# errno → (what went wrong, what the user can do); everything else is not a disk problem and propagates as is
DISK_ERRORS = {
    errno.ENOSPC: ("no space is left on the device", "free space"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space"),
    errno.EFBIG: ("a file would exceed the file system's size limit", "choose another folder"),
    errno.EROFS: ("the file system is read-only", "make it writable or choose another folder"),
    errno.EACCES: ("permission is denied", "make it writable or choose another folder"),
    errno.EPERM: ("the operation is not permitted", "make it writable or choose another folder"),
}
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how Rust-backed writers (safetensors) report an OS error


def disk_errno(exc: BaseException) -> int | None:
    """The errno of a full-disk / read-only / permission failure in `exc`, else None. Understands OSError and the
    '(os error N)' text of Rust-backed writers such as safetensors, which raise their own exception type."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code is None and not isinstance(exc, OSError):
        found = _RUST_OS_ERROR.search(str(exc))
        code = int(found.group(1)) if found else None
    return code if code in DISK_ERRORS else None


RERUN = "then rerun to resume (finished results are kept)"


def output_error(exc: BaseException, folder: str | Path, then: str = RERUN) -> OutputError:
    """One sentence for a disk failure (`exc`, or an earlier OutputError) while writing into `folder`; `then` says
    how to go on."""
    code = getattr(exc, "errno", None) if isinstance(exc, OutputError) else disk_errno(exc)
    problem, remedy = DISK_ERRORS[code or errno.ENOSPC]
    err = OutputError(f"cannot write here: {problem}; {remedy}, {then}", folder)
    err.errno = code
    return err


SPACE_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextlib.contextmanager
def writing_into(folder: str | Path, errnos: frozenset[int] = frozenset(DISK_ERRORS)) -> Iterator[None]:
    """Turn a disk failure (one of `errnos`) raised inside the block into an OutputError naming `folder`; other
    errors pass unchanged."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        if disk_errno(exc) not in errnos:
            raise
        raise output_error(exc, folder) from None


def ensure_dir(path: str | Path) -> Path:
    """mkdir -p, with a full or read-only disk reported as an OutputError naming the folder."""
    path = Path(path)
    with writing_into(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _write_all(fh, data: bytes) -> None:
    """Every byte brain3d writes through this module passes here (one place to simulate a full disk in tests)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    ensure_dir(path.parent)
    with writing_into(path.parent):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be as shareable as any file
            with os.fdopen(fd, "wb") as fh:
                _write_all(fh, data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def atomic_write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON line and flush it, so an interrupted run keeps every finished row."""
    append_jsonl_rows(path, [row])


def append_jsonl_rows(path: str | Path, rows: list[dict]) -> None:
    """Append JSON lines with one flush + fsync. All or nothing: when the disk fills up midway, the file is cut back
    to its old length (no torn line) and an OutputError names the folder."""
    path = Path(path)
    ensure_dir(path.parent)
    data = "".join(json.dumps(r, default=_json_default) + "\n" for r in rows).encode("utf-8")
    with writing_into(path.parent), open(path, "ab") as fh:
        size = fh.seek(0, os.SEEK_END)
        try:
            _write_all(fh, data)
        except BaseException:
            with contextlib.suppress(OSError):
                fh.truncate(size)
            raise


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file. A last line cut short (a run killed mid-append, without a newline) is dropped; a bad
    line anywhere else is an error."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # no newline after it: the torn tail of an interrupted append
                break
            raise
    return rows


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `path` whole, on failure it is removed."""
    path = Path(path)
    ensure_dir(path.parent)
    with writing_into(path.parent):
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    # a full or read-only disk inside the block (writers of their own, e.g. safetensors) names the folder; a
    # permission error there may concern a file the block reads, so it passes unchanged
    with writing_into(path.parent, SPACE_OR_READ_ONLY):
        try:
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OutputError as exc:  # a write inside the temporary folder: name the folder the user chose
            shutil.rmtree(tmp, ignore_errors=True)
            inside = exc.path is not None and Path(exc.path).resolve().is_relative_to(tmp.resolve())
            raise (output_error(exc, path.parent) if inside else exc) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def stable_hash(*parts: Any, digits: int = 16) -> str:
    """Hex digest of the parts' string forms; unlike Python's salted hash() it is the same in every process."""
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:digits]


def stable_int(*parts: Any) -> int:
    """A non-negative 63-bit integer derived from `stable_hash` (for seeding and stable choices)."""
    return int(stable_hash(*parts, digits=16), 16) & ((1 << 63) - 1)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
