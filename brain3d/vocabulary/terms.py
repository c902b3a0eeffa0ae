"""What a report says: the clinical vocabulary (laterality, anatomy, pathology) and its two extractors.

The ground floor of meaning: training (keyword weights, findings head), evaluation (F1), reporting (DICOM SR,
FHIR), explanation targets and the twins all read a report through this one module, so a word means the same
thing everywhere. Two extractors over the same vocabularies (FACTS.md):

``parity`` reproduces the reference scorer to the letter, because the paper's Lat/Anat/Path F1 depend on it:
lowercase; the characters ``. , ; ! ? ( )`` become spaces; a keyword is present iff ``" kw "`` occurs in
``" " + text + " "``. Only the space character delimits words, so a keyword glued to a newline or a tab is
not found; no negation, plurals or synonyms ("no necrosis" counts as necrosis).

``extended`` returns what a report *asserts*:

- Words are ``[a-z]+`` runs of the lowercased text, so any whitespace, newline or punctuation delimits them,
  and hyphenated forms split ("left-sided", "fronto-parietal").
- Variants map to the canonical keyword: plurals (ventricles, lesions, tumours, masses), British spellings
  (tumour, oedema), adjectives and verb forms (cerebellar, ventricular, necrotic, oedematous, enhancing,
  enhanced, compressed, compressing) and compound lobes (frontoparietal -> frontal + parietal).
- Clauses end at ``. ; : ! ?`` and newlines, and before the contrastive words
  but / however / although / though / whereas / while / yet / except.
  "and" does not end a clause, so "no edema or necrosis and no enhancement" negates all three.
- A negation cue — no, not, without, absence of, absent, negative for, free of, lack of, nor, neither —
  negates every keyword after it up to the end of its clause, crossing a comma only where a list goes on
  (the next segment starts with a keyword, optionally after "or"/"nor": "no edema, necrosis or enhancement"
  negates all three; "no clear margin, and edema is marked" does not negate edema). A trailing cue —
  "is absent", "not seen", "not observed", "not identified", "not detected", "not present", "not evident", "not visible",
  "not noted", "ruled out" — negates the keywords before it back to the previous comma or clause start
  ("the mass enhances, necrosis is not seen" negates only necrosis).
  Negated keywords of every category are dropped: "no lesion in the left hemisphere" asserts no side.
- Read as a radiologist reads them, these look like negations but are not:
  - A follow-up statement: "no" or "without" followed by a change word — change, changes, progression,
    increase, growth, enlargement, extension, worsening, optionally after up to two of interval /
    significant / appreciable / substantial / definite / further / new / measurable — says the finding is
    still there and has not changed. "No change in the left frontal lesion." asserts left, frontal and
    lesion; "No interval progression of the right temporal mass, no edema." asserts right, temporal and
    mass and negates edema (the comma-separated "no" is a cue of its own). "No new lesion." stays a
    negation: "new" alone is not a change word.
  - A hedge that keeps a possibility open: "cannot be excluded", "can not be excluded", "could not be
    excluded", "cannot be ruled out", "not excluded", "not ruled out", "cannot exclude", "can't exclude".
    "Necrosis cannot be excluded." asserts necrosis: a possible finding is reported, so it is scored
    (the hedge's own "not" opens no negation and "ruled out" closes none). Likewise "possible",
    "probable", "likely", "suspected", "suspicious for", "may represent" and "consistent with" change
    nothing: the keywords they qualify stay asserted. "No evidence of", "no sign(s) of" are negations.
- Bilateral: "bilateral", "bilaterally" and "both hemispheres/sides" assert both sides, and the laterality
  set is expressed in left/right only: {"bilateral"} -> {"left", "right"}. So "left frontal and right
  parietal" matches a reference saying "bilateral", and a one-sided answer to a bilateral lesion earns
  half the recall instead of nothing. `side_of` folds {"left", "right"} back to "bilateral".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

LATERALITY = ("left", "right", "bilateral")
ANATOMY = ("frontal", "parietal", "temporal", "occipital", "cerebellum", "ventricle", "periventricular")
PATHOLOGY = ("edema", "necrosis", "enhancement", "compression", "tumor", "mass", "lesion")
VOCAB: dict[str, tuple[str, ...]] = {"laterality": LATERALITY, "anatomy": ANATOMY, "pathology": PATHOLOGY}
CATEGORIES = tuple(VOCAB)
MODES = ("parity", "extended")
LOBES = ("frontal", "parietal", "temporal", "occipital")
FINDINGS = ("edema", "necrosis", "enhancement", "compression")

_PARITY_PUNCT = str.maketrans({c: " " for c in ".,;!?()"})

# variant word -> canonical keywords it asserts (extended mode)
VARIANTS: dict[str, tuple[str, ...]] = {
    "left": ("left",), "right": ("right",),
    "bilateral": ("left", "right"), "bilaterally": ("left", "right"),
    "frontal": ("frontal",), "parietal": ("parietal",), "temporal": ("temporal",), "occipital": ("occipital",),
    "cerebellum": ("cerebellum",), "cerebellar": ("cerebellum",), "cerebellums": ("cerebellum",),
    "ventricle": ("ventricle",), "ventricles": ("ventricle",), "ventricular": ("ventricle",),
    "periventricular": ("periventricular",),
    "edema": ("edema",), "oedema": ("edema",), "edemas": ("edema",), "oedemas": ("edema",),
    "edematous": ("edema",), "oedematous": ("edema",),
    "necrosis": ("necrosis",), "necrotic": ("necrosis",), "necroses": ("necrosis",),
    "enhancement": ("enhancement",), "enhancements": ("enhancement",), "enhancing": ("enhancement",),
    "enhanced": ("enhancement",), "enhances": ("enhancement",), "enhance": ("enhancement",),
    "compression": ("compression",), "compressions": ("compression",), "compressed": ("compression",),
    "compressing": ("compression",), "compresses": ("compression",), "compressive": ("compression",),
    "compress": ("compression",),
    "tumor": ("tumor",), "tumors": ("tumor",), "tumour": ("tumor",), "tumours": ("tumor",),
    "mass": ("mass",), "masses": ("mass",),
    "lesion": ("lesion",), "lesions": ("lesion",),
}
_LOBE_PREFIX = {"fronto": "frontal", "parieto": "parietal", "temporo": "temporal", "occipito": "occipital"}
_COMPOUND = re.compile(r"^((?:fronto|parieto|temporo|occipito)+)(frontal|parietal|temporal|occipital)$")
_CLAUSE_SPLIT = re.compile(r"[.;:!?\n\r]+|\b(?:but|however|although|though|whereas|while|yet|except)\b")
_WORD = re.compile(r"[a-z]+")
_PRE_CUES = ("no", "not", "without", "nor", "neither", "absent", ("absence", "of"), ("negative", "for"),
             ("free", "of"), ("lack", "of"))
# hedges: they keep a possibility open, so the keywords they qualify stay asserted (checked before the cues)
_HEDGES = (("cannot", "be", "excluded"), ("can", "not", "be", "excluded"), ("could", "not", "be", "excluded"),
           ("cannot", "be", "ruled", "out"), ("can", "not", "be", "ruled", "out"), ("could", "not", "be", "ruled", "out"),
           ("can", "t", "be", "excluded"), ("can", "t", "be", "ruled", "out"), ("not", "be", "excluded"),
           ("not", "excluded"), ("not", "ruled", "out"), ("cannot", "exclude"), ("can", "not", "exclude"),
           ("can", "t", "exclude"), ("could", "not", "exclude"))
# "no change in the left frontal lesion": a follow-up statement, the finding persists
_CHANGE_WORDS = frozenset(("change", "changes", "progression", "increase", "growth", "enlargement", "extension",
                           "worsening"))
_CHANGE_MODIFIERS = frozenset(("interval", "significant", "appreciable", "substantial", "definite", "further", "new",
                               "measurable"))
_POST_CUES = (("is", "absent"), ("are", "absent"), ("not", "seen"), ("not", "observed"), ("not", "identified"),
              ("not", "detected"), ("not", "present"), ("not", "evident"), ("not", "visible"), ("not", "noted"),
              ("ruled", "out"))


def _category_of() -> dict[str, str]:
    return {kw: cat for cat, kws in VOCAB.items() for kw in kws}


_CATEGORY = _category_of()


def empty() -> dict[str, set[str]]:
    return {c: set() for c in CATEGORIES}


# ---------------------------------------------------------------- parity
def extract_parity(text: str) -> dict[str, set[str]]:
    """The reference scorer's extraction, bug for bug (see module docstring)."""
    padded = " " + (text or "").lower().translate(_PARITY_PUNCT) + " "
    return {cat: {kw for kw in kws if f" {kw} " in padded} for cat, kws in VOCAB.items()}


# ---------------------------------------------------------------- extended
@dataclass(frozen=True)
class Mention:
    """One canonical keyword occurrence; `negated` when inside a negation scope."""

    keyword: str
    clause: int
    position: int
    negated: bool


def canonical(word: str) -> tuple[str, ...]:
    """The canonical keywords a lower-case word asserts (extended mode): "bilateral" -> (left, right), "oedema" -> (edema,)."""
    if word in VARIANTS:
        return VARIANTS[word]
    m = _COMPOUND.match(word)
    if m:
        prefixes = re.findall(r"fronto|parieto|temporo|occipito", m.group(1))
        return tuple(dict.fromkeys([_LOBE_PREFIX[p] for p in prefixes] + [m.group(2)]))
    if word in _LOBE_PREFIX:  # "fronto" of "fronto-parietal"
        return (_LOBE_PREFIX[word],)
    return ()


def _match_at(words: list[str], i: int, cue: str | tuple[str, ...]) -> int:
    """Length of `cue` if it starts at words[i], else 0."""
    seq = (cue,) if isinstance(cue, str) else cue
    return len(seq) if tuple(words[i:i + len(seq)]) == seq else 0


def _continues_list(words: list[str], j: int) -> bool:
    """Whether a comma segment starting at words[j] continues a negated list ("no edema, necrosis or ...")."""
    if words[j] in ("or", "nor") and j + 1 < len(words):
        j += 1
    return bool(canonical(words[j]))


def _follow_up(words: list[str], i: int) -> int:
    """Length of a follow-up phrase at words[i] ("no change", "without interval progression"), else 0."""
    if words[i] not in ("no", "without"):
        return 0
    j = i + 1
    while j < len(words) and j - i <= 2 and words[j] in _CHANGE_MODIFIERS:
        j += 1
    return j + 1 - i if j < len(words) and words[j] in _CHANGE_WORDS else 0


def _clause_mentions(clause: str, clause_index: int) -> list[Mention]:
    # Sub-clauses split by commas bound the backward reach of trailing cues.
    words: list[str] = []
    segment: list[int] = []
    for seg_i, part in enumerate(clause.split(",")):
        for w in _WORD.findall(part):
            words.append(w)
            segment.append(seg_i)
    # "both hemispheres/sides" asserts both sides
    keywords: list[tuple[int, tuple[str, ...]]] = []
    for i, w in enumerate(words):
        kws = canonical(w)
        if w == "both" and i + 1 < len(words) and words[i + 1] in ("hemispheres", "sides"):
            kws = ("left", "right")
        if kws:
            keywords.append((i, kws))
    negated = [False] * len(words)
    i = 0
    while i < len(words):
        hedge = next((n for c in _HEDGES if (n := _match_at(words, i, c))), 0) or _follow_up(words, i)
        if hedge:  # neither negates: skip its words
            i += hedge
            continue
        post = next((n for c in _POST_CUES if (n := _match_at(words, i, c))), 0)
        if post:
            for j in range(i - 1, -1, -1):
                if segment[j] != segment[i]:
                    break
                negated[j] = True
            i += post
            continue
        pre = next((n for c in _PRE_CUES if (n := _match_at(words, i, c))), 0)
        if pre:
            for j in range(i + pre, len(words)):
                if segment[j] != segment[j - 1] and not _continues_list(words, j):
                    break
                negated[j] = True
            i += pre
            continue
        i += 1
    return [Mention(kw, clause_index, i, negated[i]) for i, kws in keywords for kw in kws]


def mentions(text: str) -> list[Mention]:
    """Every canonical keyword occurrence of the extended extractor, with its negation flag."""
    out: list[Mention] = []
    for ci, clause in enumerate(_CLAUSE_SPLIT.split((text or "").lower())):
        out.extend(_clause_mentions(clause, ci))
    return out


@functools.lru_cache(maxsize=4096)
def _asserted(text: str) -> tuple[frozenset[str], ...]:
    # memoised: scoring asks for side, lobes, findings and F1 sets of the same report several times
    sets = empty()
    for m in mentions(text):
        if not m.negated:
            sets[_CATEGORY[m.keyword]].add(m.keyword)
    return tuple(frozenset(sets[c]) for c in CATEGORIES)


def extract_extended(text: str) -> dict[str, set[str]]:
    """Asserted (non-negated) keywords per category; laterality in left/right only."""
    return {c: set(s) for c, s in zip(CATEGORIES, _asserted(text or ""))}


def extract(text: str, mode: str = "parity") -> dict[str, set[str]]:
    """Keyword sets per category ('laterality', 'anatomy', 'pathology') under `mode` ('parity'|'extended')."""
    if mode == "parity":
        return extract_parity(text)
    if mode == "extended":
        return extract_extended(text)
    raise ValueError(f"unknown extraction mode {mode!r}; expected one of {MODES}")


def side_of(text: str) -> str | None:
    """The side a report asserts (extended extractor): 'left', 'right', 'bilateral' or None."""
    sides = extract_extended(text)["laterality"]
    if {"left", "right"} <= sides:
        return "bilateral"
    return next(iter(sides), None)


def side_set(side: str | None) -> set[str]:
    """A truth side as the extended laterality set ('bilateral' -> {'left', 'right'})."""
    if side is None:
        return set()
    return {"left", "right"} if side == "bilateral" else {side}


def findings_of(text: str) -> dict[str, bool]:
    """Which of edema/necrosis/enhancement/compression the report asserts (negation-aware)."""
    asserted = extract_extended(text)["pathology"]
    return {f: f in asserted for f in FINDINGS}


def lobes_of(text: str) -> list[str]:
    """Cerebral lobes the report asserts (negation-aware), in canonical order."""
    asserted = extract_extended(text)["anatomy"]
    return [lobe for lobe in LOBES if lobe in asserted]


def asserts_pathology(text: str) -> bool:
    """True when the report asserts any pathology keyword (extended extractor)."""
    return bool(extract_extended(text)["pathology"])
