"""Property-based fuzzing of the library readers (brain3d.io.read_volume) with headers that lie (tests/hostile.py):
every example is a volume or the documented one-sentence VolumeError naming the file; never another exception, a
hang, a file left behind or an allocation far beyond what the file holds. A fixed, seeded example budget; the soak
(bench/fuzz.py) runs the same checks with many more."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.hostile import KINDS, Outcomes, read_outcome

EXAMPLES = {"nifti1": 60, "nifti2": 40, "nrrd": 60, "mha": 60, "dicom": 40}
OUTCOMES = Outcomes()


def fuzz_settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def outcome_table():
    """The outcome table of this module's examples, written to artifacts/fuzz_outcomes.json."""
    yield
    write_outcomes("readers", OUTCOMES)


def write_outcomes(target: str, outcomes: Outcomes) -> None:
    root = Path(os.environ.get("BRAIN3D_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
    root.mkdir(parents=True, exist_ok=True)
    path = root / "fuzz_outcomes.json"
    table = json.loads(path.read_text()) if path.is_file() else {}
    table[target] = outcomes.table()
    path.write_text(json.dumps(table, indent=1))


def _warm_up() -> None:
    """Import the readers' libraries once, so that their first import does not count as a reader's memory."""
    import SimpleITK  # noqa: F401
    from pydicom import dcmread  # noqa: F401


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_readers_answer_a_volume_or_one_sentence(kind):
    _warm_up()

    @fuzz_settings(EXAMPLES[kind])
    @given(KINDS[kind]())
    def check(h):
        with tempfile.TemporaryDirectory(prefix="brain3d-fuzz-") as folder:
            OUTCOMES.add("library reader", kind, read_outcome(h, Path(folder)))

    check()
