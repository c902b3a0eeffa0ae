"""The normal-study report asserts nothing (extended extractor; parity sees no side or anatomy either) and
depends on the subject id alone."""

from __future__ import annotations

from brain3d.vocabulary import extract, normal_report


def test_normal_reports_assert_no_side_location_or_pathology() -> None:
    texts = {normal_report(f"sub-{i:04d}") for i in range(300)}
    assert len(texts) >= 20  # a handful of sentences, many combinations
    for text in texts:
        ext, par = extract(text, "extended"), extract(text, "parity")
        assert ext == {"laterality": set(), "anatomy": set(), "pathology": set()}, text
        assert par["laterality"] == set() and par["anatomy"] == set(), text


def test_normal_report_is_chosen_by_the_subject_id_alone() -> None:
    assert normal_report("sub-0042") == normal_report("sub-0042")
    assert normal_report("sub-0042") != normal_report("sub-0043")
