"""Property-based fuzzing of `brain3d report` with scans whose headers lie (tests/hostile.py): every example ends
with a record (exit 0) or the scan's one-sentence error naming the file (exit 3, the same sentence in its record;
exit 2 when nothing could be collected), never a traceback or a hang. The model is loaded once (the command's
loading code is not under test here); everything after it is the command as a user runs it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given

from brain3d.cli import main
from tests.hostile import KINDS, Outcomes, report_outcome
from tests.test_io_fuzz import fuzz_settings, write_outcomes

EXAMPLES = {"nifti1": 12, "nifti2": 8, "nrrd": 12, "mha": 12, "dicom": 10}
OUTCOMES = Outcomes()


@pytest.fixture(scope="module")
def loaded(trained_checkpoint):
    from brain3d.commands.report import load_with_sequences
    from brain3d.eval.evaluate import EvaluateOptions

    yield load_with_sequences(trained_checkpoint, EvaluateOptions(device="cpu"), None)
    write_outcomes("brain3d report", OUTCOMES)


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_report_answers_a_record_or_one_sentence(kind, loaded, trained_checkpoint, monkeypatch, capsys):
    import brain3d.commands.report as report

    monkeypatch.setattr(report, "load_with_sequences", lambda *a, **k: loaded)

    def run(args: list[str]) -> tuple[int, str, str]:
        code = main(["report", *args, "-c", str(trained_checkpoint), "--json", "--device", "cpu",
                     "--max-new-tokens", "4"])
        out, err = capsys.readouterr()
        return code, out, err

    @fuzz_settings(EXAMPLES[kind])
    @given(KINDS[kind]())
    def check(h):
        with tempfile.TemporaryDirectory(prefix="brain3d-fuzz-") as folder:
            OUTCOMES.add("brain3d report", kind, report_outcome(run, h, Path(folder)))

    check()
