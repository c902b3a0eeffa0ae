"""Full and read-only disks for tests.

`Disk` simulates them portably, at the one place brain3d writes its bytes (`brain3d.fsutil._write_all`) and where it
creates files and folders there: the write that would go past the free space writes what fits and then fails with
ENOSPC, as a real full disk does. `real_tmpfs` mounts a small tmpfs when the test runs as root with mount rights
(the real thing, including writers of their own such as safetensors), and skips otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

import brain3d.fsutil as fsutil


class Disk:
    """Free space in bytes for every write through brain3d.fsutil (None: unlimited), or the number of writes that
    still fit (`writes`: the next one writes half its bytes and fails); `read_only` refuses files."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, free: int | None = None, writes: int | None = None) -> None:
        self.free, self.writes, self.read_only, self.failures = free, writes, False, 0
        real_write, real_mkstemp, real_mkdtemp = fsutil._write_all, tempfile.mkstemp, tempfile.mkdtemp

        def write(fh, data: bytes) -> None:
            if self.read_only:
                self._fail(errno.EROFS)
            if self.writes is not None:
                if self.writes == 0:
                    self.free = len(data) // 2
                self.writes -= 1
            if self.free is not None and len(data) > self.free:
                fh.write(data[: self.free])  # a full disk takes what fits, then refuses the rest
                fh.flush()
                self.free = 0
                self._fail(errno.ENOSPC)
            if self.free is not None:
                self.free -= len(data)
            real_write(fh, data)

        def mkstemp(*args, **kwargs):
            if self.read_only:
                self._fail(errno.EROFS)
            return real_mkstemp(*args, **kwargs)

        def mkdtemp(*args, **kwargs):
            if self.read_only:
                self._fail(errno.EROFS)
            return real_mkdtemp(*args, **kwargs)

        monkeypatch.setattr(fsutil, "_write_all", write)
        monkeypatch.setattr(fsutil.tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(fsutil.tempfile, "mkdtemp", mkdtemp)

    def _fail(self, code: int) -> None:
        self.failures += 1
        raise OSError(code, os.strerror(code))

    def free_space(self) -> None:
        self.free, self.writes, self.read_only = None, None, False


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders an interrupted atomic write would leave (dot-names ending in .tmp or .old)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob(".*")
                  if p.name.endswith((".tmp", ".old")))


@contextlib.contextmanager
def real_tmpfs(root: Path, size: str = "1M") -> Iterator[Path]:
    """A tmpfs of `size` mounted at root/disk (unmounted after); skips where mounting is not allowed."""
    mount = root / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def remount(mount: Path, option: str) -> None:
    """Remount a `real_tmpfs` read-only ('ro') or writable ('rw')."""
    subprocess.run(["mount", "-o", f"remount,{option}", str(mount)], check=True, capture_output=True)
