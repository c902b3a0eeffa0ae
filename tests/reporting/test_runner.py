"""The record says only what the input can show: findings the checkpoint's sequences cannot show are null, listed
with why, and the text's statements about them are flagged; the text itself is never edited."""

from __future__ import annotations

import json

import pytest

from brain3d.reporting.runner import findings, unassessable_fields
from brain3d.reporting.schema import ReportRecord
from tests.reporting.stub_model import FLAIR_ONLY, FLAIR_T1CE, TEXTBRATS_STYLE, record_for


def test_flair_only_checkpoint_marks_enhancement_not_assessable():
    rec = record_for(FLAIR_ONLY, TEXTBRATS_STYLE)
    assert rec.report == TEXTBRATS_STYLE  # the text stays as the model wrote it
    assert rec.sequences == ["flair"]
    f = rec.findings
    assert (f.side, f.lobes, f.edema, f.necrosis, f.compression, f.pathology) == ("left", ["frontal"], True, False,
                                                                                  False, True)
    assert f.enhancement is None  # not false: the scan cannot say
    [hidden] = f.not_assessable
    assert (hidden.finding, hidden.needs) == ("enhancement", ["t1ce"])
    assert "post-contrast T1" in hidden.reason and hidden.reason.endswith("the model read flair")
    assert (rec.asserts_unassessable, rec.negates_unassessable) == (["enhancement"], [])


def test_flair_t1ce_checkpoint_reads_enhancement():
    rec = record_for(FLAIR_T1CE, TEXTBRATS_STYLE)
    assert rec.sequences == ["flair", "t1ce"]
    assert rec.findings.enhancement is True and rec.findings.not_assessable == []
    assert (rec.asserts_unassessable, rec.negates_unassessable) == ([], [])


def test_sequence_aliases_of_the_checkpoint_are_canonical_in_the_record():
    rec = record_for(["FLAIR", "T1-Gd"], TEXTBRATS_STYLE)
    assert rec.sequences == ["flair", "t1ce"] and rec.findings.enhancement is True


def test_a_negation_of_an_unassessable_finding_is_flagged_too():
    rec = record_for(FLAIR_ONLY, "Right parietal lesion with edema. No enhancement.")
    assert rec.findings.enhancement is None
    assert (rec.asserts_unassessable, rec.negates_unassessable) == ([], ["enhancement"])


def test_a_silent_report_still_marks_the_finding_but_flags_nothing():
    rec = record_for(FLAIR_ONLY, "Left temporal lesion with edema.")
    assert rec.findings.enhancement is None and [n.finding for n in rec.findings.not_assessable] == ["enhancement"]
    assert (rec.asserts_unassessable, rec.negates_unassessable) == ([], [])


def test_enhancement_alone_on_flair_is_no_pathology():
    assert findings("Faint enhancement.", FLAIR_ONLY).pathology is False
    assert findings("Faint enhancement.", FLAIR_T1CE).pathology is True
    assert findings("Faint enhancement of a left frontal lesion.", FLAIR_ONLY).pathology is True


def test_unknown_sequences_keep_the_old_reading():
    """Without sequences (a record of schema 1, or a caller that does not know them) nothing is marked."""
    f = findings(TEXTBRATS_STYLE)
    assert f.enhancement is True and f.not_assessable == []
    assert unassessable_fields(TEXTBRATS_STYLE, None) == {"asserts_unassessable": [], "negates_unassessable": []}


def test_a_schema_1_record_still_reads():
    old = {"schema_version": 1, "id": "s", "input": ["x.nii.gz"], "orientation": "RAS", "checkpoint": "c",
           "profile": "greedy", "report": "Left frontal lesion with enhancement.",
           "findings": {"side": "left", "lobes": ["frontal"], "edema": False, "necrosis": False, "enhancement": True,
                        "compression": False, "pathology": True}, "seconds": 1.0}
    rec = ReportRecord.model_validate_json(json.dumps(old))
    assert rec.sequences is None and rec.findings.enhancement is True and rec.asserts_unassessable == []


def test_record_json_round_trip_keeps_null():
    rec = record_for(FLAIR_ONLY, TEXTBRATS_STYLE)
    raw = json.loads(rec.model_dump_json())
    assert raw["findings"]["enhancement"] is None and raw["schema_version"] == 2
    assert ReportRecord.model_validate(raw) == rec


def test_not_assessable_names_only_findings():
    from pydantic import ValidationError

    from brain3d.reporting.schema import NotAssessable

    with pytest.raises(ValidationError):
        NotAssessable(finding="haemorrhage", needs=[], reason="x")
