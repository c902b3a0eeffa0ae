"""Keyword extraction (parity = reference scorer, extended = negation-aware), worked by hand."""

from __future__ import annotations

import pytest

from brain3d import vocabulary
from brain3d.vocabulary import extract, findings_of, lobes_of, side_of


def sets(lat=(), anat=(), path=()):
    return {"laterality": set(lat), "anatomy": set(anat), "pathology": set(path)}


# ---------------------------------------------------------------- parity
@pytest.mark.parametrize("text, expected", [
    # punctuation . , ; ! ? ( ) becomes spaces
    ("Lesion in the LEFT frontal lobe, with edema.", sets(["left"], ["frontal"], ["lesion", "edema"])),
    ("(right)temporal;necrosis!", sets(["right"], ["temporal"], ["necrosis"])),
    # negation is ignored: "no necrosis" counts as necrosis
    ("No necrosis and no enhancement.", sets(path=["necrosis", "enhancement"])),
    # no plurals, no synonyms, no adjectives
    ("Lesions compress the ventricles; tumour with oedema, cerebellar, enhancing.", sets()),
    # other punctuation is not a delimiter: hyphen, colon, quote
    ("left-sided frontal: mass'", sets()),
    # only the space character delimits: a newline glues words together
    ("left\nfrontal lesion", sets(path=["lesion"])),
    ("mass\tlesion", sets()),
    ("bilateral periventricular compression", sets(["bilateral"], ["periventricular"], ["compression"])),
    ("", sets()),
])
def test_parity_extraction(text, expected):
    assert extract(text, "parity") == expected


def test_parity_is_the_default_mode():
    assert extract("no edema") == extract("no edema", "parity") == sets(path=["edema"])


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        extract("x", "fuzzy")


# ---------------------------------------------------------------- extended
@pytest.mark.parametrize("text, expected", [
    # negation cues within the clause
    ("No necrosis.", sets()),
    ("The lesion is seen without surrounding edema.", sets(path=["lesion"])),
    ("Absence of necrosis is noted.", sets()),
    ("Negative for enhancement. Free of compression.", sets()),
    ("There is no evidence of necrosis.", sets()),
    # a list after a cue is negated across commas and or/nor
    ("No edema, necrosis or enhancement.", sets()),
    # ... but a comma + new statement ends the negation
    ("The lesion has no clear margin, and edema is marked.", sets(path=["lesion", "edema"])),
    # clause boundaries: sentence end, semicolon, newline, "but"
    ("No edema. Necrosis is present.", sets(path=["necrosis"])),
    ("No edema; necrosis is present", sets(path=["necrosis"])),
    ("No edema\nnecrosis is present", sets(path=["necrosis"])),
    ("No edema but necrosis is present", sets(path=["necrosis"])),
    # words before the cue stay asserted
    ("The left frontal mass shows no enhancement.", sets(["left"], ["frontal"], ["mass"])),
    # trailing cues negate back to the previous comma only
    ("The mass enhances, necrosis is not seen.", sets(path=["mass", "enhancement"])),
    ("Edema is absent.", sets()),
    # plurals and variants
    ("Lesions compress the ventricles.", sets(anat=["ventricle"], path=["lesion", "compression"])),
    ("Tumour with oedema in the cerebellar hemisphere, enhancing rim, necrotic core.",
     sets(anat=["cerebellum"], path=["tumor", "edema", "enhancement", "necrosis"])),
    ("Masses in the temporal lobes", sets(anat=["temporal"], path=["mass"])),
    # compound lobes and hyphens
    ("Left fronto-parietal and temporoparietal lesion", sets(["left"], ["frontal", "parietal", "temporal"], ["lesion"])),
    ("left-sided lesion", sets(["left"], path=["lesion"])),
    # newline is whitespace
    ("left\nfrontal lesion", sets(["left"], ["frontal"], ["lesion"])),
    # bilateral is expressed as both sides; so is left + right
    ("Bilateral frontal lesions", sets(["left", "right"], ["frontal"], ["lesion"])),
    ("Left frontal and right parietal lesions", sets(["left", "right"], ["frontal", "parietal"], ["lesion"])),
    ("Edema in both hemispheres", sets(["left", "right"], path=["edema"])),
    # a negated side is not asserted
    ("No lesion in the left hemisphere.", sets()),
])
def test_extended_extraction(text, expected):
    assert extract(text, "extended") == expected


# ---------------------------------------------------------------- as a radiologist reads them
@pytest.mark.parametrize("text, expected", [
    # a follow-up statement: the lesion is still there, unchanged
    ("No change in the left frontal lesion.", sets(["left"], ["frontal"], ["lesion"])),
    ("No interval change in the size of the right temporal mass.", sets(["right"], ["temporal"], ["mass"])),
    ("No significant progression of the left parietal tumour, no edema.", sets(["left"], ["parietal"], ["tumor"])),
    ("Without interval growth of the right occipital lesion.", sets(["right"], ["occipital"], ["lesion"])),
    ("Unchanged left frontal lesion.", sets(["left"], ["frontal"], ["lesion"])),
    ("No interval change.", sets()),
    # "new" alone is not a change word: no new lesion is a negation
    ("No new lesion in the left hemisphere.", sets()),
    # hedges keep the possibility open: the hedged finding is reported
    ("Necrosis cannot be excluded.", sets(path=["necrosis"])),
    ("Necrosis can not be excluded.", sets(path=["necrosis"])),
    ("A small left frontal lesion cannot be ruled out.", sets(["left"], ["frontal"], ["lesion"])),
    ("Edema can't be ruled out, necrosis is not seen.", sets(path=["edema"])),
    ("Enhancement is not excluded.", sets(path=["enhancement"])),
    ("We cannot exclude a right temporal mass.", sets(["right"], ["temporal"], ["mass"])),
    ("Possible necrosis in the left temporal lobe.", sets(["left"], ["temporal"], ["necrosis"])),
    ("Probable right parietal tumor.", sets(["right"], ["parietal"], ["tumor"])),
    ("Findings suspicious for a left occipital mass.", sets(["left"], ["occipital"], ["mass"])),
    ("This may represent edema.", sets(path=["edema"])),
    # ... while these are negations
    ("No evidence of edema.", sets()),
    ("No signs of necrosis in the right hemisphere.", sets()),
    ("Necrosis is ruled out.", sets()),
    ("The left frontal lesion is not seen.", sets()),
])
def test_negation_and_hedges_as_a_radiologist_reads_them(text, expected):
    assert extract(text, "extended") == expected


def test_the_parity_extractor_keeps_the_reference_bugs_for_follow_ups_and_hedges():
    # parity counts every keyword present, negated or not: "no change" and "cannot be excluded" change nothing
    assert extract("No change in the left frontal lesion.", "parity") == sets(["left"], ["frontal"], ["lesion"])
    assert extract("Necrosis cannot be excluded. No edema.", "parity") == sets(path=["necrosis", "edema"])


def test_synthetic_healthy_report_asserts_nothing_pathological():
    report = ("The brain MRI FLAIR scan shows no abnormality. No focal lesion is identified. "
              "No evidence of edema or necrosis is seen. No abnormal enhancement is present. "
              "No space-occupying mass is seen.")
    assert extract(report, "extended")["pathology"] == set()
    assert extract(report, "parity")["pathology"] == {"lesion", "edema", "necrosis", "enhancement", "mass"}
    assert not vocabulary.asserts_pathology(report)


# ---------------------------------------------------------------- helpers
@pytest.mark.parametrize("text, side", [
    ("Lesion in the left frontal lobe.", "left"),
    ("Right temporal mass.", "right"),
    ("Bilateral frontal lesions.", "bilateral"),
    ("Left frontal and right parietal lesions.", "bilateral"),
    ("No lesion in the left hemisphere.", None),
    ("Normal brain MRI.", None),
    ("No change in the left frontal lesion.", "left"),
    ("A right temporal mass cannot be excluded.", "right"),
])
def test_side_of(text, side):
    assert side_of(text) == side


def test_findings_and_lobes():
    text = ("A mass in the right fronto-parietal region with oedema. Necrotic core, enhancing rim. "
            "No ventricular compression. No occipital involvement.")
    assert findings_of(text) == {"edema": True, "necrosis": True, "enhancement": True, "compression": False}
    assert lobes_of(text) == ["frontal", "parietal"]


@pytest.mark.parametrize("side", ["left", "right", "bilateral", None])
def test_side_set_matches_extended_laterality(side):
    text = f"{side} lesion" if side else "lesion"
    assert vocabulary.side_set(side) == extract(text, "extended")["laterality"]
    assert side_of(text) == side
