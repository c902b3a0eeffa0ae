"""TextBraTS-style report writer: one paragraph per subject, written from the ground truth alone.

A pathological report has four parts, as in TextBraTS: location (hemisphere + lobes + signal), edema,
necrosis (with enhancement), ventricular compression. Each part has several paraphrases; an absent finding
is either stated with an explicit negation ("No necrosis is seen.") or left out.

Wording rules that keep the clinical keywords exact (checked by tests with `brain3d.vocabulary`):
- the side is named only with the words left / right / bilateral, and only the truth's side;
- lobes are named with the singular adjective ("left frontal and parietal lobes");
- the ventricles are named (asserted) only when compression is present ("compression of the left lateral
  ventricle"); otherwise they are absent or negated ("No ventricular compression is seen."), so the
  asserted anatomy keywords are exactly the truth's locations, plus 'ventricle' iff compression;
- a negated finding always sits in its own sentence, after its cue (no / without / absence of), with no
  punctuation or contrastive word between cue and word, and never shares a sentence with a present finding;
- healthy reports (`vocabulary.normal_report`) contain no side word, no anatomy keyword and no pathology word outside a negation.
"""

from __future__ import annotations

import random

from brain3d.data.manifest import Truth
from brain3d.fsutil import stable_int
from brain3d.vocabulary import FINDINGS, LOBES, normal_report

EXTRA_LOCATIONS = ("periventricular",)
SIDES = ("left", "right", "bilateral")

_SIGNAL = (
    "heterogeneous hyperintense signal on FLAIR",
    "mixed high signal intensity on FLAIR",
    "predominantly high FLAIR signal with irregular margins",
    "an irregular area of high signal intensity",
    "abnormal hyperintense signal and ill-defined borders",
)
_SIGNAL_NECROTIC = (
    "mixed high and low signal intensity on FLAIR",
    "heterogeneous signal with a hypointense centre",
    "a hyperintense periphery around a low-signal core",
)
_LOCATION = (
    "The lesion is located in the {where}, showing {signal}.",
    "A mass is seen in the {where}, with {signal}.",
    "There is a tumor involving the {where}, demonstrating {signal}.",
    "An abnormal lesion occupies the {where} and shows {signal}.",
    "Imaging reveals a lesion in the {where} with {signal}.",
)
_PERIVENTRICULAR = (
    " It extends into the periventricular white matter.",
    " Periventricular extension is present.",
    " The lesion reaches the periventricular region.",
)
_EDEMA_YES = (
    "Extensive peritumoral edema surrounds the lesion.",
    "Surrounding edema with high FLAIR signal is evident.",
    "There is marked edema around the mass.",
    "Perilesional edema is observed.",
    "The lesion is accompanied by significant edema.",
)
_EDEMA_NO = (
    "No significant edema is seen.",
    "There is no perilesional edema.",
    "The lesion is seen without surrounding edema.",
)
_NECROSIS_YES = (
    "Central necrosis is present within the lesion.",
    "Areas of necrosis are noted in the core of the tumor.",
    "The centre of the mass shows necrosis with low signal.",
    "Necrosis is evident centrally.",
)
_NECROSIS_NO = (
    "No necrosis is seen.",
    "There is no evidence of necrosis.",
    "The lesion appears solid without necrosis.",
    "Absence of necrosis is noted.",
)
_ENHANCEMENT_YES = (
    "Ring-like enhancement is seen on the contrast-enhanced images.",
    "The margin of the tumor shows irregular enhancement after contrast.",
    "Peripheral enhancement is present on post-contrast T1.",
    "There is heterogeneous enhancement of the lesion rim.",
)
_ENHANCEMENT_NO = (
    "No enhancement is observed after contrast.",
    "There is no abnormal enhancement.",
    "Post-contrast images show no enhancement.",
)
_COMPRESSION_YES = (
    "Mass effect causes compression of the adjacent{side_word} lateral ventricle.",
    "There is compression of the{side_word} lateral ventricle.",
    "Compression of the{side_word} lateral ventricle by the mass is noted.",
    "The lesion exerts mass effect with compression of the nearby ventricle.",
)
_COMPRESSION_NO = (
    "No ventricular compression is seen.",
    "There is no compression of the ventricular system.",
    "No compression of the ventricles is evident.",
    "No significant mass effect is present.",
)
def write_report(truth: Truth | None, healthy: bool, subject_id: str, seed: int) -> str:
    """One report paragraph for a subject; the same (truth, id, seed) always gives the same text."""
    if healthy:
        return normal_report(subject_id)
    if truth is None:
        raise ValueError(f"subject {subject_id}: a pathological report needs a truth")
    rng = random.Random(stable_int("report", subject_id, seed))
    f = {k: bool(truth.findings.get(k, False)) for k in FINDINGS}
    parts = [_location(truth, f["necrosis"], rng)]
    parts.append(_finding(f["edema"], _EDEMA_YES, _EDEMA_NO, rng, omit_p=0.0))
    parts.append(_finding(f["necrosis"], _NECROSIS_YES, _NECROSIS_NO, rng, omit_p=0.3))
    parts.append(_finding(f["enhancement"], _ENHANCEMENT_YES, _ENHANCEMENT_NO, rng, omit_p=0.4))
    side_word = f" {truth.side}" if truth.side in ("left", "right") else ""
    compression = _finding(f["compression"], _COMPRESSION_YES, _COMPRESSION_NO, rng, omit_p=0.3)
    parts.append(compression.format(side_word=side_word))
    return " ".join(p for p in parts if p)


def report_corpus(n: int, seed: int = 0) -> list[str]:
    """`n` reports of random truths (about 20% healthy) for tokenizer training; deterministic in `seed`."""
    rng = random.Random(stable_int("corpus", seed))
    out = []
    for i in range(n):
        sid = f"corpus-{seed}-{i:06d}"
        if rng.random() < 0.2:
            out.append(write_report(None, True, sid, seed))
            continue
        out.append(write_report(random_truth(rng), False, sid, seed))
    return out


def random_truth(rng: random.Random) -> Truth:
    """A plausible pathological truth (side by the paper's proportions, 1-3 lobes, random findings)."""
    side = rng.choices(SIDES, weights=(42.5, 40.7, 14.6))[0]
    k = rng.choices((1, 2, 3), weights=(0.45, 0.4, 0.15))[0]
    lobes = sorted(rng.sample(LOBES, k), key=LOBES.index)
    if rng.random() < 0.3:
        lobes.append("periventricular")
    findings = {
        "edema": rng.random() < 0.9,
        "necrosis": rng.random() < 0.6,
        "enhancement": rng.random() < 0.65,
        "compression": rng.random() < 0.5,
    }
    return Truth(side=side, lobes=lobes, findings=findings)


def lobe_phrase(lobes: list[str], plural: bool = False) -> str:
    """'frontal lobe', 'frontal and parietal lobes', 'frontal, parietal and temporal lobes'.

    `plural` names a single lobe in the plural ("bilateral frontal lobes")."""
    names = [l for l in LOBES if l in lobes]
    if not names:
        return "cerebral hemispheres" if plural else "cerebral hemisphere"
    if len(names) == 1:
        return f"{names[0]} lobes" if plural else f"{names[0]} lobe"
    return f"{', '.join(names[:-1])} and {names[-1]} lobes"


def _location(truth: Truth, necrotic: bool, rng: random.Random) -> str:
    lobes = lobe_phrase(truth.lobes, plural=truth.side == "bilateral")
    where = f"{truth.side} {lobes}" if truth.side else lobes
    signal = rng.choice(_SIGNAL_NECROTIC if necrotic and rng.random() < 0.5 else _SIGNAL)
    text = rng.choice(_LOCATION).format(where=where, signal=signal)
    if "periventricular" in truth.lobes:
        text += rng.choice(_PERIVENTRICULAR)
    return text


def _finding(present: bool, yes: tuple[str, ...], no: tuple[str, ...], rng: random.Random, omit_p: float) -> str:
    """A sentence stating a finding, or negating it, or (with probability omit_p when absent) nothing."""
    if present:
        return rng.choice(yes)
    if rng.random() < omit_p:
        return ""
    return rng.choice(no)
