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
