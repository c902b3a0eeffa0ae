"""What an explanation explains: a score of the model's own report, computed for a batch of perturbed volumes.

Every target is a weighted sum of token log-probabilities of the report under teacher forcing:
  report    mean log p of every report token (= −NLL, the paper's score; the reference code's only target)
  side      log p(side word) − log p(its mirror word) at the report's first asserted left/right word: "why *left*
            and not *right*?" — the log-odds of the written side against the mirror at that very position
  lobes     Σ log p of the tokens of every lobe word the report writes (frontal, fronto-parietal, ...)
  findings  Σ log p of the tokens of every finding word (edema, necrotic, enhancing, compression, ...)
  a phrase  Σ log p of the tokens of every occurrence of that phrase in the report
A target whose words are not in the report is an `ExplainError` for that scan. Only the sequence positions a target
reads are computed by the LM's head (`logits_to_keep`), and the sequence is cut after the last of them, so a side
explanation runs the LM over the prompt and the report up to the side word only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from brain3d.errors import ConfigError, ExplainError
from brain3d.vocabulary import FINDINGS, LOBES, canonical, side_of
from brain3d.explain.config import TARGET_KINDS
from brain3d.model.prompt import PromptLayout, report_ids

MIRROR = {"left": "right", "right": "left"}
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class Term:
    """weight × log p(token at report position `index` of text `text` | everything before it)."""

    text: int
    index: int
    token: int
    weight: float


@dataclass(frozen=True)
class Target:
    """kind: report | side | lobes | findings | phrase; texts[0] is the report (a side target may add the report
    with the mirror word); words: the report words explained; description: the score in words."""

    kind: str
    texts: tuple[str, ...]
    terms: tuple[Term, ...]
    words: tuple[str, ...]
    description: str


def build_target(target: str, report: str, tokenizer, layout: PromptLayout, max_tokens: int,
                 source: str | None = None) -> Target:
    """The score `target` asks for on this report; an `ExplainError` naming `source` when the report lacks it."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("explanations need a fast tokenizer (character offsets of the report's words)")
    ids, offsets = _tokens(tokenizer, report, layout, max_tokens)
    kind = target.strip().lower() if target.strip().lower() in TARGET_KINDS else "phrase"
    if kind == "report":
        terms = tuple(Term(0, j, t, 1.0 / len(ids)) for j, t in enumerate(ids))
        return Target(kind, (report,), terms, (), "mean log-probability of the report's tokens (−NLL)")
    if kind == "side":
        return _side_target(report, tokenizer, layout, max_tokens, ids, offsets, source)
    if kind == "phrase":
        spans = _phrase_spans(report, target.strip())
        what = f"the phrase {target.strip()!r}"
    else:
        vocab = set(LOBES if kind == "lobes" else FINDINGS)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(report) if vocab & set(canonical(m.group().lower()))]
        what = f"a {'lobe' if kind == 'lobes' else 'finding'} word ({', '.join(sorted(vocab))})"
    if not spans:
        raise ExplainError(f"its report does not contain {what}, so there is nothing to explain for --target "
                           f"{target.strip()!r} (report: {_short(report)})", source)
    terms = tuple(Term(0, j, ids[j], 1.0) for s, e in spans for j in _covering(offsets, s, e))
    _require(terms, max_tokens, source)
    words = tuple(report[s:e] for s, e in spans)
    return Target(kind, (report,), terms, words, f"Σ log-probability of {what} where the report writes it")


def _side_target(report: str, tokenizer, layout: PromptLayout, max_tokens: int, ids: list[int],
                 offsets: list[tuple[int, int]], source: str | None) -> Target:
    side = side_of(report)
    if side is None:
        raise ExplainError("its report names no side, so there is nothing to explain for --target side "
                           f"(report: {_short(report)})", source)
    wanted = {"left", "right"} if side == "bilateral" else {side}
    match = next((m for m in _WORD.finditer(report) if m.group().lower() in wanted), None)
    if match is None:  # the side is only in "bilateral" / "both hemispheres"
        raise ExplainError(f"its report says {side} without a left or right word; explain it with --target "
                           f"bilateral (report: {_short(report)})", source)
    word, (s, e) = match.group(), match.span()
    mirror = MIRROR[word.lower()]
    mirror = mirror.capitalize() if word[0].isupper() else mirror
    own = _covering(offsets, s, e)
    terms = [Term(0, j, ids[j], 1.0) for j in own]
    texts = [report]
    m_text = report[:s] + mirror + report[e:]
    m_ids, m_offsets = _tokens(tokenizer, m_text, layout, max_tokens)
    m_own = _covering(m_offsets, s, s + len(mirror))
    if len(m_own) == 1 and own and m_own[0] == own[0] and m_ids[:own[0]] == ids[:own[0]]:
        # same prefix, one-token mirror: its log-probability is read from the report's own forward pass
        terms.append(Term(0, own[0], m_ids[own[0]], -1.0))
    else:
        texts.append(m_text)
        terms += [Term(1, j, m_ids[j], -1.0) for j in m_own]
    _require(terms, max_tokens, source)
    return Target("side", tuple(texts), tuple(terms), (word,),
                  f"log p({word}) − log p({mirror}) at the report's side word")


def _tokens(tokenizer, text: str, layout: PromptLayout, max_tokens: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The report ids exactly as teacher forcing feeds them (`prompt.report_ids`) and each one's character span
    (the end id has an empty span past the text)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]] + [(len(text), len(text))]
    ids = report_ids(tokenizer, [text], layout, max_tokens)[0]
    if ids[:len(enc["input_ids"])] != list(enc["input_ids"])[:len(ids)]:
        raise ConfigError("the tokenizer gives different ids with and without character offsets")
    return ids, offsets[:len(ids)]


def _covering(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Indices of the tokens whose character span overlaps [start, end)."""
    return [j for j, (a, b) in enumerate(offsets) if b > start and a < end and b > a]


def _phrase_spans(report: str, phrase: str) -> list[tuple[int, int]]:
    words = [re.escape(w) for w in phrase.split()]
    pattern = re.compile(r"(?<![A-Za-z])" + r"\s+".join(words) + r"(?![A-Za-z])", re.IGNORECASE)
    return [m.span() for m in pattern.finditer(report)]


def _require(terms: Sequence[Term], max_tokens: int, source: str | None) -> None:
    if not terms:
        raise ExplainError(f"the target words come after the first {max_tokens} report tokens the model reads",
                           source)


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 1] + "…")


class TargetScorer:
    """Callable (B, C, D, H, W) perturbed volumes → (B,) scores of `target` under `model` (one batched pass through
    the encoder and one through the LM for all texts of the target)."""

    def __init__(self, model, target: Target) -> None:
        self.model, self.target = model, target
        self.texts = list(target.texts)
        self._t = torch.tensor([t.text for t in target.terms])
        self._idx = torch.tensor([t.index for t in target.terms])
        self._tok = torch.tensor([t.token for t in target.terms])
        self._w = torch.tensor([t.weight for t in target.terms], dtype=torch.float64)

    @torch.no_grad()
    def __call__(self, volumes: torch.Tensor) -> torch.Tensor:
        model, b, n_texts = self.model, volumes.shape[0], len(self.texts)
        vis = model.visual_tokens(model.encode_volume(volumes))  # (B, K, dlm)
        embeds, mask, labels = model.build_inputs(self.texts * b, vis.repeat_interleave(n_texts, dim=0))
        # embeds (B·T, L, dlm), rows ordered volume-major: row = volume · T + text
        start = int((labels[0] != -100).nonzero()[0])  # first report position: the prefix length
        pos = start - 1 + self._idx  # (n_terms,) the position whose logits predict each scored token
        keep, col = torch.unique(pos, return_inverse=True)  # sorted positions the head must compute
        cut = int(keep[-1]) + 1
        out = model.lm(inputs_embeds=embeds[:, :cut], attention_mask=mask[:, :cut], use_cache=False,
                       logits_to_keep=keep.to(embeds.device))
        logp = out.logits.float().log_softmax(dim=-1)  # (B·T, k, V)
        logp = logp.view(b, n_texts, *logp.shape[1:])  # (B, T, k, V)
        vals = logp[:, self._t.to(logp.device), col.to(logp.device), self._tok.to(logp.device)]  # (B, n_terms)
        return vals.double() @ self._w.to(vals.device)  # (B,)
