"""How often generated reports speak of findings the evaluated checkpoint's input cannot show.

A FLAIR-only checkpoint trained on reports written from all four BraTS sequences learns to write "peripheral
enhancement", which only a post-contrast T1 shows (`brain3d.vocabulary.assessable`). The rate of such statements
is a property of the checkpoint, not of the subject, so it is scored from each prediction row's ``sequences`` (the
checkpoint's input channels, written by `evaluate` since schema 2 of the record); rows without it (older prediction
files, other systems) are left out and, when none has it, the section says so instead of guessing.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from brain3d.errors import Brain3DError
from brain3d.eval.stats import N_BOOT, SEED, bootstrap_ci
from brain3d.eval.tables import fmt
from brain3d.vocabulary import FINDINGS, canonical_sequence, unassessable_findings, unassessable_statements

DEFINITION = ("share of reports that assert (as present) a finding the checkpoint's input sequences cannot show, "
              "e.g. enhancement without a post-contrast T1; 'stated' also counts negations ('no enhancement')")


def row_sequences(row: dict, index: int, source=None) -> tuple[str, ...] | None:
    """The canonical input sequences of a prediction row, None when the row does not name them."""
    seqs = row.get("sequences")
    if seqs is None:
        return None
    if not isinstance(seqs, list) or not seqs or not all(isinstance(s, str) and s for s in seqs):
        raise Brain3DError(f"row {index} ({row.get('id')}) has sequences {seqs!r}; expected a list of sequence "
                           "names such as [\"flair\"]", source)
    return tuple(canonical_sequence(s) for s in seqs)


def unassessable_section(rows: Sequence[dict], n_boot: int = N_BOOT, seed: int = SEED, level: float = 0.95,
                         source=None) -> dict:
    """{available, n, sequences, unassessable, asserted, stated, per_finding, definition} over the rows that name
    their sequences; `asserted` / `stated` are Interval dicts (mean, lo, hi, n) of the per-report 0/1 indicator."""
    said: list[dict[str, str]] = []
    kinds: set[tuple[str, ...]] = set()
    for i, row in enumerate(rows, 1):
        seqs = row_sequences(row, i, source)
        if seqs is None:
            continue
        kinds.add(seqs)
        said.append(unassessable_statements(str(row.get("generated") or ""), seqs))
    if not said:
        return {"available": False, "n": 0,
                "reason": "the prediction rows name no input sequences (written before they were recorded)"}
    hidden = [f for f in FINDINGS if any(f in unassessable_findings(k) for k in kinds)]
    asserted = np.array([any(v == "present" for v in s.values()) for s in said], dtype=np.float64)
    stated = np.array([bool(s) for s in said], dtype=np.float64)
    return {
        "available": True, "n": len(said), "sequences": sorted(list(k) for k in kinds), "unassessable": hidden,
        "asserted": bootstrap_ci(asserted, n_boot, seed, level).to_dict(),
        "stated": bootstrap_ci(stated, n_boot, seed, level).to_dict(),
        "per_finding": {f: {"asserted": sum(s.get(f) == "present" for s in said),
                            "negated": sum(s.get(f) == "absent" for s in said)} for f in hidden},
        "definition": DEFINITION,
    }


def unassessable_lines(section: dict | None) -> list[str]:
    """The Markdown lines of the section for metrics.md (none when it is missing or unavailable)."""
    if not section or not section.get("available"):
        return []
    inputs = "; ".join(",".join(s) for s in section["sequences"])
    if not section["unassessable"]:
        return ["", f"Unassessable findings: none, the input ({inputs}) can show every finding ({section['n']} reports)."]
    a = section["asserted"]
    per = ", ".join(f"{f} asserted {v['asserted']} / negated {v['negated']}" for f, v in section["per_finding"].items())
    return ["", f"Unassessable findings ({', '.join(section['unassessable'])} on {inputs}): {fmt(a['mean'])} "
                f"[{fmt(a['lo'])}, {fmt(a['hi'])}] of {section['n']} reports assert one ({per})."]
