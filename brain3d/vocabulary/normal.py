"""The words of a normal study: the report a healthy subject gets, phantom or real control alike.

Every sentence asserts nothing (no side, no anatomy keyword, no pathology outside a negation), as the extended
extractor of `vocabulary.terms` reads it; tests hold it to that.
"""

from __future__ import annotations

import random

from brain3d.fsutil import stable_int

_HEALTHY = (
    "No abnormal signal intensity is identified in the brain parenchyma.",
    "The CSF spaces are normal in size and configuration.",
    "There is no midline shift or mass effect.",
    "Grey-white matter differentiation is preserved.",
    "No focal lesion is identified.",
    "The cerebral sulci and basal cisterns are unremarkable.",
    "No evidence of edema or necrosis is seen.",
    "No abnormal enhancement is present.",
    "The study is within normal limits for age.",
    "No space-occupying mass is seen.",
)
_HEALTHY_OPENERS = (
    "The brain MRI FLAIR scan shows no abnormality.",
    "Normal brain MRI.",
    "No intracranial abnormality is detected.",
)


def normal_report(subject_id: str) -> str:
    """A normal-study report: an opener plus three to five distinct normal-study sentences, chosen by a stable
    hash of the id (the same id gives the same text on every machine)."""
    h = stable_int("healthy-report", subject_id)
    rng = random.Random(h)
    k = 3 + h % 3
    picks = rng.sample(range(len(_HEALTHY)), k)
    return " ".join([_HEALTHY_OPENERS[h % len(_HEALTHY_OPENERS)], *(_HEALTHY[i] for i in sorted(picks))])
