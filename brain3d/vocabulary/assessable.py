"""Which MRI sequences each finding needs before a report may say anything about it.

A report is written from the scan the model read, not from the study: a FLAIR-only checkpoint trained on
TextBraTS reports (written from all four BraTS sequences) still writes "peripheral enhancement", which only a
post-contrast T1 can show. This module is the one rule the record, the DICOM SR, the FHIR bundle and the scoring
share for "can the input show this finding at all":

    finding       assessable on any of            why
    edema         flair, t2                       T2 prolongation around the lesion; T1 barely shows it
    necrosis      flair, t2, t1ce                 a dark core inside a bright lesion on FLAIR / T2; the
                                                  non-enhancing centre inside a rim on post-contrast T1
    enhancement   t1ce                            contrast uptake exists only on a post-contrast T1
    compression   flair, t1, t1ce, t2             ventricular mass effect is anatomy, visible on any structural scan
    side, lobes   any sequence                    where a lesion lies is seen on whatever shows the lesion

Sequence names are compared in canonical form (`canonical_sequence`): case, '-', '_' and spaces are ignored and
the common aliases map to the names the package uses (BraTS 2020 flair / t1 / t1ce / t2, BraTS 2023 t2f / t1n /
t1c / t2w, t1gd, BIDS-style T1w / T2w). An unknown name stays itself and makes no finding assessable but side
and lobes.
"""

from __future__ import annotations

import re
from typing import Iterable

from brain3d.vocabulary.terms import FINDINGS, mentions

SEQUENCE_ALIASES: dict[str, tuple[str, ...]] = {
    "flair": ("flair", "t2flair", "t2f"),
    "t1": ("t1", "t1w", "t1n"),
    "t1ce": ("t1ce", "t1gd", "t1c", "t1post"),
    "t2": ("t2", "t2w"),
}
POST_CONTRAST = "t1ce"
ANY = None  # marker: assessable on whatever sequence was given

# finding -> canonical sequences any one of which makes it assessable (None: any sequence at all)
ASSESSABLE_ON: dict[str, tuple[str, ...] | None] = {
    "edema": ("flair", "t2"),
    "necrosis": ("flair", "t2", "t1ce"),
    "enhancement": (POST_CONTRAST,),
    "compression": ("flair", "t1", "t1ce", "t2"),
    "side": ANY,
    "lobes": ANY,
}
_WHAT: dict[str, str] = {
    "edema": "edema is read on FLAIR or T2",
    "necrosis": "necrosis is read on FLAIR, T2 or post-contrast T1",
    "enhancement": "contrast enhancement is seen only on a post-contrast T1 (t1ce)",
    "compression": "ventricular compression is read on a structural sequence (FLAIR, T1, T1ce or T2)",
}
_ALIAS = {alias: name for name, aliases in SEQUENCE_ALIASES.items() for alias in aliases}
_SEPARATORS = re.compile(r"[\s_\-.]+")


def canonical_sequence(name: str) -> str:
    """The package's name of an MRI sequence ("T1-Gd" -> "t1ce", "T2F" -> "flair"); unknown names are kept
    (lower-cased, separators dropped)."""
    key = _SEPARATORS.sub("", str(name).lower())
    return _ALIAS.get(key, key)


def needs(finding: str) -> tuple[str, ...] | None:
    """The canonical sequences any one of which makes `finding` assessable; None when any sequence will do."""
    if finding not in ASSESSABLE_ON:
        raise ValueError(f"unknown finding {finding!r}; expected one of {', '.join(ASSESSABLE_ON)}")
    return ASSESSABLE_ON[finding]


def assessable(finding: str, sequences: Iterable[str]) -> bool:
    """Whether an input made of `sequences` can show `finding` (one of FINDINGS, 'side' or 'lobes') at all."""
    given = {canonical_sequence(s) for s in sequences}
    wanted = needs(finding)
    if wanted is ANY:
        return bool(given)
    return bool(given & set(wanted))


def unassessable_findings(sequences: Iterable[str]) -> tuple[str, ...]:
    """The findings (in FINDINGS order) that an input of `sequences` cannot show: ('enhancement',) for FLAIR."""
    given = tuple(sequences)
    return tuple(f for f in FINDINGS if not assessable(f, given))


def reason(finding: str, sequences: Iterable[str]) -> str:
    """One sentence saying why `finding` is not assessable on `sequences` (for records, SR and FHIR notes)."""
    what = _WHAT.get(finding)
    if what is None:
        raise ValueError(f"unknown finding {finding!r}; expected one of {', '.join(FINDINGS)}")
    given = ", ".join(canonical_sequence(s) for s in sequences) or "no sequence"
    return f"not assessable: {what}; the model read {given}"


def stated(text: str, finding: str) -> str | None:
    """What `text` says about `finding`: 'present' (asserted), 'absent' (only negated) or None (not mentioned).

    Uses the negation-aware extractor of `terms`, so "no enhancement" is 'absent' and "the mass enhances" is
    'present'; a finding both asserted and negated counts as asserted, as in `findings_of`."""
    hits = [m for m in mentions(text) if m.keyword == finding]
    if not hits:
        return None
    return "present" if any(not m.negated for m in hits) else "absent"


def unassessable_statements(text: str, sequences: Iterable[str]) -> dict[str, str]:
    """{finding: 'present' | 'absent'} for every finding `text` speaks about that `sequences` cannot show.

    The demo page's count: a report "asserts an unassessable finding" when any value is 'present'."""
    out: dict[str, str] = {}
    for f in unassessable_findings(sequences):
        said = stated(text, f)
        if said is not None:
            out[f] = said
    return out
