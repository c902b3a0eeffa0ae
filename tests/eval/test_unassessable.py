"""The scoring section that counts reports asserting findings the checkpoint's input cannot show."""

from __future__ import annotations

import json

import pytest

from brain3d.cli import main
from brain3d.errors import Brain3DError
from brain3d.eval import nlg
from brain3d.eval.scoring import ScoreOptions, score_predictions
from brain3d.eval.unassessable import unassessable_lines, unassessable_section

FAST = ScoreOptions(nlg=nlg.NLGOptions(meteor=False, bertscore=False), n_boot=200)
REF = "A left frontal mass with edema and peripheral enhancement."
TEXTS = [
    "A left frontal mass with edema. Peripheral enhancement is present on post-contrast T1.",  # asserts
    "Right parietal lesion with edema. No enhancement.",  # negates
    "Left temporal lesion with edema.",  # silent
    "The brain is normal.",  # silent
]


def _rows(sequences=("flair",)) -> list[dict]:
    rows = [{"id": f"s{i}", "reference": REF, "generated": t} for i, t in enumerate(TEXTS)]
    for r in rows:
        if sequences is not None:
            r["sequences"] = list(sequences)
    return rows


def test_flair_only_predictions_count_the_enhancement_they_assert():
    s = unassessable_section(_rows(), n_boot=200)
    assert s["available"] and s["n"] == 4 and s["sequences"] == [["flair"]] and s["unassessable"] == ["enhancement"]
    assert s["asserted"]["mean"] == pytest.approx(0.25) and s["asserted"]["n"] == 4
    assert s["asserted"]["lo"] <= 0.25 <= s["asserted"]["hi"]
    assert s["stated"]["mean"] == pytest.approx(0.5)
    assert s["per_finding"] == {"enhancement": {"asserted": 1, "negated": 1}}


def test_flair_t1ce_predictions_assert_nothing_unassessable():
    s = unassessable_section(_rows(("FLAIR", "T1Gd")), n_boot=200)
    assert s["available"] and s["unassessable"] == [] and s["sequences"] == [["flair", "t1ce"]]
    assert s["asserted"]["mean"] == 0.0 and s["per_finding"] == {}
    assert unassessable_lines(s) == ["", "Unassessable findings: none, the input (flair,t1ce) can show every finding "
                                         "(4 reports)."]


def test_old_prediction_files_say_why_there_is_no_count():
    s = unassessable_section(_rows(None))
    assert s == {"available": False, "n": 0,
                 "reason": "the prediction rows name no input sequences (written before they were recorded)"}
    assert unassessable_lines(s) == []


def test_rows_without_sequences_are_left_out():
    rows = _rows()
    del rows[0]["sequences"]  # the one that asserts enhancement
    s = unassessable_section(rows, n_boot=200)
    assert s["n"] == 3 and s["asserted"]["mean"] == 0.0


@pytest.mark.parametrize("bad", ["flair", [], [1], [""]])
def test_malformed_sequences_are_refused(bad):
    rows = _rows()
    rows[2]["sequences"] = bad
    with pytest.raises(Brain3DError, match=r"row 3 \(s2\) has sequences"):
        unassessable_section(rows)


def test_score_predictions_writes_the_section(tmp_path):
    result = score_predictions(_rows(), tmp_path, FAST)
    assert result["unassessable"]["asserted"]["mean"] == pytest.approx(0.25)
    assert json.loads((tmp_path / "metrics.json").read_text())["unassessable"]["per_finding"]["enhancement"] == {
        "asserted": 1, "negated": 1}
    md = (tmp_path / "metrics.md").read_text()
    assert "Unassessable findings (enhancement on flair): .250" in md and "of 4 reports assert one" in md


def test_brain3d_score_reads_an_old_predictions_file(tmp_path, capsys):
    """A predictions file from before the field existed still scores; the section says why it is empty."""
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(None)))
    assert main(["score", str(path), "--out", str(tmp_path / "out"), "--no-meteor", "--no-bertscore",
                 "--n-boot", "50"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["unassessable"]["available"] is False and metrics["n"] == 4
