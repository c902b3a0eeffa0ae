"""The report vocabulary, on the ground floor: what a report says (side, lobes, findings, negation), the words
of a normal study, and which sequences a finding needs to be assessable at all. Imports nothing of brain3d
but `fsutil`."""

from brain3d.vocabulary.assessable import (
    ASSESSABLE_ON,
    assessable,
    canonical_sequence,
    unassessable_findings,
    unassessable_statements,
)
from brain3d.vocabulary.normal import normal_report
from brain3d.vocabulary.terms import (
    ANATOMY,
    CATEGORIES,
    FINDINGS,
    LATERALITY,
    LOBES,
    MODES,
    PATHOLOGY,
    VARIANTS,
    VOCAB,
    Mention,
    asserts_pathology,
    canonical,
    empty,
    extract,
    extract_extended,
    extract_parity,
    findings_of,
    lobes_of,
    mentions,
    side_of,
    side_set,
)

__all__ = [
    "ASSESSABLE_ON", "assessable", "canonical_sequence", "unassessable_findings", "unassessable_statements",
    "ANATOMY", "CATEGORIES", "FINDINGS", "LATERALITY", "LOBES", "MODES", "PATHOLOGY", "VARIANTS", "VOCAB", "Mention",
    "asserts_pathology", "canonical", "empty", "extract", "extract_extended", "extract_parity", "findings_of",
    "lobes_of", "mentions", "normal_report", "side_of", "side_set",
]
