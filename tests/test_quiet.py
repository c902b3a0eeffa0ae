"""Third-party noise: bitsandbytes' kernel line dropped (said in brain3d's words only for 4-bit on CPU),
Python warnings ignored where they arise, and BRAIN3D_VERBOSE letting everything through."""

from __future__ import annotations

import logging
import warnings

import pytest

from brain3d import quiet

BNB_LINE = ("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'. "
            "Please make sure you already `pip install kernels` and the kernels >= 0.11.1")


@pytest.fixture
def bnb(monkeypatch):
    """bitsandbytes' logger with a fresh filter state, cleaned up afterwards."""
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")  # recorded, so whatever a test sets is undone
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    earlier = [f for f in logger.filters if isinstance(f, quiet._KernelNote)]  # installed by earlier tests' runs
    for f in earlier:
        logger.removeFilter(f)
    monkeypatch.setattr(quiet, "_kernel_note", quiet._KernelNote())
    yield logger
    logger.removeFilter(quiet._kernel_note)
    for f in earlier:
        logger.addFilter(f)


def test_kernel_line_is_dropped_and_other_lines_pass(bnb, caplog, capsys):
    quiet.silence_third_party()
    quiet.silence_third_party()  # idempotent
    with caplog.at_level(logging.WARNING):
        bnb.warning(BNB_LINE)
        bnb.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("before", [True, False])
def test_four_bit_on_cpu_gets_one_note_in_brain3d_words(bnb, capsys, before):
    quiet.silence_third_party()
    if before:  # bitsandbytes was imported (and complained) before the 4-bit model was asked for
        bnb.warning(BNB_LINE)
    quiet.four_bit_requested("cpu")
    if not before:
        bnb.warning(BNB_LINE)
    quiet.four_bit_requested(None)
    assert capsys.readouterr().err.splitlines() == [quiet.KERNEL_NOTE]


def test_no_note_on_gpu_or_without_the_warning(bnb, capsys):
    quiet.silence_third_party()
    quiet.four_bit_requested("cpu")  # the kernel loaded fine: nothing to say
    assert capsys.readouterr().err == ""
    quiet._kernel_note.wanted = False
    quiet.four_bit_requested("cuda:0")
    bnb.warning(BNB_LINE)  # the CPU kernel does not matter on a GPU
    assert capsys.readouterr().err == ""


def test_verbose_lets_the_kernel_line_through(bnb, caplog, monkeypatch):
    quiet.silence_third_party()
    quiet.set_verbose(True)  # as `brain3d -v` does after the CLI installed the filter
    with caplog.at_level(logging.WARNING):
        bnb.warning(BNB_LINE)
    assert [r.getMessage() for r in caplog.records] == [BNB_LINE]
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    quiet.silence_third_party()
    assert quiet._kernel_note not in bnb.filters


@pytest.mark.parametrize("verbose", [False, True])
def test_ignoring_filters_only_the_matching_warning_unless_verbose(monkeypatch, verbose):
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1" if verbose else "0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet.ignoring(r"Passing `repetition_penalty`", UserWarning):
            warnings.warn("Passing `repetition_penalty` with `inputs_embeds` ...", UserWarning)
            warnings.warn("something the user should see", UserWarning)
    assert [str(w.message)[:9] for w in caught] == (["Passing `", "something"] if verbose else ["something"])
