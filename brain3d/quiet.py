"""Third-party noise on a normal run, and the switch that brings it back.

brain3d speaks to its user in its own lines. Warnings from the libraries it drives (bitsandbytes' optional
CPU kernel, transformers' load reports, PEFT deprecations) are not the user's to act on, so they are
filtered where they arise. `brain3d -v` sets BRAIN3D_VERBOSE=1 (child processes such as torchrun workers
inherit it), and every filter here then stands aside so that the libraries speak for themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from typing import Iterator

VERBOSE_ENV = "BRAIN3D_VERBOSE"
# bitsandbytes tries a hub kernel for CPU 4-bit matmuls when it is imported (transformers and PEFT import it
# on every run) and logs a warning when the optional `kernels` package is missing.
_BNB_LOGGER = "bitsandbytes.backends.cpu.ops"
_BNB_MARK = "kernels-community"
KERNEL_NOTE = ("note: bitsandbytes' fast CPU kernel for 4-bit matmuls is not installed (`pip install kernels`); "
               "4-bit generation on CPU uses its slower fallback")


def is_verbose() -> bool:
    """True when the user asked to see third-party warnings (`-v` or BRAIN3D_VERBOSE=1)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _KernelNote(logging.Filter):
    """Drops bitsandbytes' kernel warning; says it once in brain3d's words if a 4-bit model runs on CPU."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = self.wanted = self.said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if _BNB_MARK not in record.getMessage():
            return True
        self.seen = True
        self.say()
        return False

    def say(self) -> None:
        if self.seen and self.wanted and not self.said:
            self.said = True
            print(KERNEL_NOTE, file=sys.stderr)


_kernel_note = _KernelNote()


def set_verbose(on: bool) -> None:
    """Through the environment, so that worker processes started by brain3d behave the same."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
        logging.getLogger(_BNB_LOGGER).removeFilter(_kernel_note)
    else:
        os.environ.pop(VERBOSE_ENV, None)


def silence_third_party() -> None:
    """Install the filters of process-wide library loggers (idempotent); nothing when verbose."""
    if is_verbose():
        return
    logger = logging.getLogger(_BNB_LOGGER)
    if _kernel_note not in logger.filters:
        logger.addFilter(_kernel_note)
    # nibabel reports each header field it repairs while reading ("sizeof_hdr should be 348; ..."); what matters
    # reaches the user as brain3d's one sentence about the file
    logging.getLogger("nibabel.global").setLevel(logging.ERROR)


def four_bit_requested(device: object) -> None:
    """Called where a 4-bit language model is loaded: only on CPU does the missing kernel matter."""
    if str(device or "cpu").split(":")[0] == "cpu":
        _kernel_note.wanted = True
        _kernel_note.say()


@contextlib.contextmanager
def ignoring(message: str, category: type[Warning] = Warning) -> Iterator[None]:
    """Ignore Python warnings whose text matches the regex `message` inside the block, unless verbose."""
    with warnings.catch_warnings():
        if not is_verbose():
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


_native = {"depth": 0, "saved": None}
_native_lock = threading.Lock()


@contextlib.contextmanager
def native_stderr_discarded() -> Iterator[None]:
    """Discard what C++ libraries (ITK's MetaIO, teem, GDCM) print straight to the process's stderr inside the block;
    their complaint reaches the user once, as the exception brain3d turns into one sentence. Nothing changes when
    verbose. Safe across threads (the first to enter redirects, the last to leave restores); whatever else is
    written to stderr meanwhile is discarded too, so keep the block to the library call."""
    if is_verbose():
        yield
        return
    with _native_lock:
        if _native["depth"] == 0:
            sys.stderr.flush()
            _native["saved"] = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _native["depth"] += 1
    try:
        yield
    finally:
        with _native_lock:
            _native["depth"] -= 1
            if _native["depth"] == 0:
                os.dup2(_native["saved"], 2)
                os.close(_native["saved"])
                _native["saved"] = None
