"""Property-based fuzzing of POST /v1/reports with uploads whose headers lie (tests/hostile.py): NIfTI-1/2, NRRD,
MetaImage, DICOM series zipped, and zips that nest, escape, link, bomb or break. Every example is a record (200) or
the documented one-sentence error with its status; the private folder is empty after each, nothing is written
outside it, no worker hangs. A fixed, seeded example budget; bench/fuzz.py soaks the same checks longer."""

from __future__ import annotations

import pytest
from hypothesis import given

from tests.hostile import KINDS, Outcomes, serve_outcome
from tests.serve.conftest import serve_config, started
from tests.test_io_fuzz import fuzz_settings, write_outcomes

EXAMPLES = {"nifti1": 25, "nifti2": 15, "nrrd": 25, "mha": 25, "dicom": 20, "zip": 30}
OUTCOMES = Outcomes()


@pytest.fixture(scope="module")
def fuzzed(trained_checkpoint, tmp_path_factory):
    """A service with a 2 MB upload cap (zip bombs from 8 MB unpacked) and at most 16 members per zip."""
    from fastapi.testclient import TestClient

    from brain3d.serve.app import create_app

    root = tmp_path_factory.mktemp("fuzz-serve")
    app = create_app(serve_config(trained_checkpoint, root, phantoms=None, max_zip_members=16))
    with TestClient(app) as client:
        yield started(client), app, root
    write_outcomes("POST /v1/reports", OUTCOMES)


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_uploads_answer_a_record_or_one_sentence_with_its_status(fuzzed, kind):
    client, app, root = fuzzed

    @fuzz_settings(EXAMPLES[kind])
    @given(KINDS[kind]())
    def check(h):
        OUTCOMES.add("POST /v1/reports", kind, serve_outcome(client, app, h, root))

    check()
