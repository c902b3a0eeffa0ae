"""Which sequences each finding needs: the rule, the sequence aliases, and what a report text says about them."""

from __future__ import annotations

import pytest

from brain3d.vocabulary import FINDINGS
from brain3d.vocabulary.assessable import (
    ASSESSABLE_ON,
    assessable,
    canonical_sequence,
    reason,
    stated,
    unassessable_findings,
    unassessable_statements,
)

FLAIR = ("flair",)
FLAIR_T1CE = ("flair", "t1ce")


def test_the_rule_covers_every_finding_and_side_and_lobes():
    assert set(ASSESSABLE_ON) == set(FINDINGS) | {"side", "lobes"}


@pytest.mark.parametrize("sequences, hidden", [
    (FLAIR, ("enhancement",)),
    (FLAIR_T1CE, ()),
    (("t2",), ("enhancement",)),
    (("t1ce",), ("edema",)),  # necrosis (non-enhancing core) and compression read on T1ce; edema does not
    (("t1",), ("edema", "necrosis", "enhancement")),
    (("dwi",), FINDINGS),  # an unknown / unrelated sequence shows no finding
    ((), FINDINGS),
])
def test_unassessable_findings(sequences, hidden):
    assert unassessable_findings(sequences) == hidden


def test_side_and_lobes_need_only_some_scan():
    for seqs in (FLAIR, ("t1",), ("dwi",)):
        assert assessable("side", seqs) and assessable("lobes", seqs)
    assert not assessable("side", ())


@pytest.mark.parametrize("name", ["t1ce", "T1CE", "t1gd", "T1-Gd", "t1c", "T1_post", "t1 ce"])
def test_post_contrast_aliases(name):
    assert canonical_sequence(name) == "t1ce"
    assert assessable("enhancement", ["flair", name])


@pytest.mark.parametrize("name, canonical", [("FLAIR", "flair"), ("t2f", "flair"), ("T2-FLAIR", "flair"),
                                             ("t1n", "t1"), ("T1w", "t1"), ("t2w", "t2"), ("SWI", "swi")])
def test_other_aliases(name, canonical):
    assert canonical_sequence(name) == canonical


def test_unknown_finding_is_refused():
    with pytest.raises(ValueError, match="unknown finding 'haemorrhage'"):
        assessable("haemorrhage", FLAIR)
    with pytest.raises(ValueError, match="unknown finding"):
        reason("side", FLAIR)  # side is always assessable: no reason to give


def test_reason_names_what_is_needed_and_what_was_read():
    assert reason("enhancement", ["FLAIR"]) == ("not assessable: contrast enhancement is seen only on a "
                                                "post-contrast T1 (t1ce); the model read flair")


@pytest.mark.parametrize("text, expected", [
    ("Peripheral enhancement is present on post-contrast T1.", "present"),
    ("The mass enhances avidly.", "present"),
    ("No enhancement.", "absent"),
    ("No edema, necrosis or enhancement.", "absent"),
    ("Enhancement is not seen.", "absent"),
    ("Left frontal lesion with edema.", None),
    ("No enhancement centrally; rim enhancement is present.", "present"),  # asserted anywhere counts as asserted
])
def test_stated(text, expected):
    assert stated(text, "enhancement") == expected


def test_unassessable_statements_follow_the_input():
    text = "Left frontal mass with edema and peripheral enhancement. No necrosis."
    assert unassessable_statements(text, FLAIR) == {"enhancement": "present"}
    assert unassessable_statements(text, FLAIR_T1CE) == {}
    assert unassessable_statements("No enhancement.", ["flair"]) == {"enhancement": "absent"}
    assert unassessable_statements("Left frontal lesion with edema.", FLAIR) == {}
    assert unassessable_statements(text, ("t1",)) == {"edema": "present", "necrosis": "absent",
                                                      "enhancement": "present"}
