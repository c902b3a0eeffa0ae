"""Teach the tiny twin's language model the report language, and to read a prefix of soft tokens, before any
Brain3D phase.

MedGemma arrives pretrained, as a *vision*-language model: it writes reports, and it has learned to condition
what it writes on a block of image embeddings placed before the prompt. A random-initialised tiny Gemma-3
knows neither. So the tiny twin's text model is briefly trained, in one loop, on two kinds of example:

* text only: a synthetic report as a plain causal LM (how reports are worded);
* findings prefix: the report after Brain3D's own prompt layout ([K prefix embeddings][bos + prompt][report]),
  where the prefix is a block of K vectors at the soft tokens' scale that *names* the report's findings: each
  slot is a noisy mix of the "normal" embedding, and a few slots instead carry the embeddings of the report's
  asserted keywords (side, lobes, findings; `vocabulary.extract_extended`, so negated words are never
  planted). The LM learns that whatever sits in those positions says what the report must say.

Nothing here is paired with a scan or a cohort subject: the corpus is random synthetic reports, the prefix is
built from the report's own words. Turning a scan into prefix vectors the LM reads is still the job of the
encoder, compressor and projector trained in phases 1–2B, as it is with MedGemma. (Measured without this
step: even perfectly planted features taught the text-only tiny LM the side only slowly and unreliably,
see bench/grounding.py.) The folder keeps its original class and layout, so it loads through the same code
path as MedGemma.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.model.config import DEFAULT_PROMPT
from brain3d.twin.warmup import DONE, mean_of, warm_up


@dataclass(frozen=True)
class FindingsPrefix:
    """How the prefix examples are drawn. `share` of every step's examples get a prefix (0 = text only)."""

    share: float = 0.5
    min_slots: int = 8  # prefix length drawn in [min_slots, max_slots]: the twin serves any K
    max_slots: int = 32
    max_marked: int = 6  # slots that carry findings, drawn in [1, max_marked] (never more than K / 2)
    noise: float = 1.0  # std of the Gaussian part of each slot, relative to the word embeddings' RMS
    prompt: str = DEFAULT_PROMPT


def prefix_words(report: str) -> list[str]:
    """The asserted keywords of a report that a findings prefix names: side words first (a bilateral
    report asserts both 'left' and 'right'), then anatomy, then pathology; [] for a normal study."""
    from brain3d.vocabulary import extract_extended

    found = extract_extended(report)
    return sorted(found["laterality"]) + sorted(found["anatomy"]) + sorted(found["pathology"])


def findings_prefix(words: Sequence[str], word_emb: dict[str, torch.Tensor], normal: torch.Tensor, rms: float,
                    cfg: FindingsPrefix, gen: torch.Generator) -> torch.Tensor:
    """(K, d) prefix vectors, each at RMS `rms` (the soft tokens' scale). Every slot starts as a random mix of
    the 'normal' embedding and noise; for a report with findings, 1..max_marked slots carry keyword
    embeddings instead: each marked slot one side word (both sides appear when both are asserted) plus a
    random subset of the other keywords, every keyword in at least one slot."""
    k = int(torch.randint(cfg.min_slots, cfg.max_slots + 1, (1,), generator=gen))
    d = normal.shape[-1]
    a = torch.rand(k, 1, generator=gen)
    slots = a * normal + cfg.noise * rms * torch.randn(k, d, generator=gen)  # (K, d)
    if words:
        sides = [w for w in words if w in ("left", "right")]
        others = [w for w in words if w not in ("left", "right")]
        m = int(torch.randint(max(1, len(sides)), min(cfg.max_marked, k // 2) + 1, (1,), generator=gen))
        chosen = torch.randperm(k, generator=gen)[:m]
        for i, slot in enumerate(chosen.tolist()):
            parts = [sides[i % len(sides)]] if sides else []
            keep = torch.rand(len(others), generator=gen) < 0.5
            parts += [w for w, kept in zip(others, keep.tolist()) if kept or i == 0]  # slot 0 names them all
            vec = torch.stack([word_emb[w] for w in parts]).sum(0)
            slots[slot] = vec + 0.3 * rms * torch.randn(d, generator=gen)
    return slots * (rms / slots.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-6))  # (K, d)


def pretrain_language_model(folder: str | Path, corpus: Sequence[str], steps: int = 300, batch_size: int = 32,
                            lr: float = 3e-3, seed: int = 0, progress: bool = False,
                            prefix: FindingsPrefix | None = FindingsPrefix()) -> dict:
    """Train the text model of a Gemma-3 multimodal folder on `corpus` and save it back in place.

    Each step draws `batch_size` text-only reports and, when `prefix` is given, `round(share * batch_size)`
    findings-prefix examples (see the module docstring); the loss is the mean of the two token losses.
    Returns {"steps", "first_loss", "last_loss", ...} (means of the first and last 10 steps)."""
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    from brain3d.model.backbones import quiet_transformers
    from brain3d.model.projector import embedding_rms
    from brain3d.model.prompt import build_layout

    folder = Path(folder)
    with quiet_transformers():
        model = Gemma3ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    text_model, head = model.model.language_model, model.lm_head
    embed = text_model.get_input_embeddings()
    params = list({id(p): p for p in (*text_model.parameters(), *head.parameters())}.values())  # lm_head is tied
    eos = tokenizer.eos_token
    texts = [t.strip() + eos for t in corpus]
    layout = build_layout(tokenizer, prefix.prompt if prefix else DEFAULT_PROMPT, "reference")
    n_prefixed = round(prefix.share * batch_size) if prefix is not None else 0
    words = [prefix_words(t) for t in corpus] if n_prefixed else []
    vocab = sorted({w for ws in words for w in ws} | set(READING_WORDS))

    def lm_loss(embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = text_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state  # (B, T, d)
        logits = head(hidden[:, :-1])  # (B, T-1, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)

    def text_loss() -> torch.Tensor:
        idx = torch.randint(len(texts), (batch_size,), generator=gen).tolist()
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=256)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        return lm_loss(embed(enc.input_ids), enc.attention_mask, labels)

    def prefixed_loss() -> torch.Tensor:
        with torch.no_grad():  # the prefix plays the frozen vision side: its vectors are inputs, not weights
            rms = float(embedding_rms(embed, embed.num_embeddings))
            word_emb = {w: embed(torch.tensor(_word_ids(tokenizer, w))).mean(0) for w in vocab}
        idx = torch.randint(len(texts), (n_prefixed,), generator=gen).tolist()
        rows, labels = [], []
        for i in idx:
            vis = findings_prefix(words[i], word_emb, word_emb["normal"], rms, prefix, gen)  # (K, d)
            rep = tokenizer(corpus[i].strip(), add_special_tokens=False)["input_ids"][:200] + [layout.end]
            ids = torch.tensor(layout.after + rep)
            rows.append(torch.cat([embed(torch.tensor(layout.before, dtype=torch.long)), vis, embed(ids)]))
            labels.append(torch.tensor([-100] * (len(layout.before) + len(vis) + len(layout.after)) + rep))
        t = max(len(r) for r in rows)
        embeds = torch.stack([F.pad(r, (0, 0, 0, t - len(r))) for r in rows])  # (B, T, d), right-padded
        mask = torch.stack([(torch.arange(t) < len(r)).long() for r in rows])  # (B, T)
        lab = torch.stack([F.pad(x, (0, t - len(x)), value=-100) for x in labels])  # (B, T)
        return lm_loss(embeds, mask, lab)

    def step_loss() -> torch.Tensor:
        loss = text_loss()
        return loss if not n_prefixed else 0.5 * (loss + prefixed_loss())

    model.train()
    losses = warm_up(params, step_loss, steps, lr, 20, "tiny LM: report language + findings prefix", progress)
    model.eval()
    summary = {"steps": steps, "first_loss": mean_of(losses), "last_loss": mean_of(losses, last=True),
               "corpus": len(texts), "findings_prefix": asdict(prefix) if n_prefixed else None}
    if n_prefixed:
        with torch.no_grad():
            rms = float(embedding_rms(embed, embed.num_embeddings))
            word_emb = {w: embed(torch.tensor(_word_ids(tokenizer, w))).mean(0) for w in vocab}
            summary["held_out_side_accuracy"] = held_out_reading(
                model, tokenizer, layout, word_emb, rms, prefix, torch.Generator().manual_seed(seed + 7919))
    with quiet_transformers(), atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for extra in folder.iterdir():  # generation and processor configs: the folder keeps its layout
            if extra.is_file() and not (tmp / extra.name).exists():
                (tmp / extra.name).write_bytes(extra.read_bytes())
        atomic_write_json(tmp / DONE, summary)
    return summary


READING_WORDS = ("normal", "left", "right", "frontal", "edema", "lesion")  # the held-out reading check's words


@torch.no_grad()
def held_out_reading(model, tokenizer, layout, word_emb: dict[str, torch.Tensor], rms: float, cfg: FindingsPrefix,
                     gen: torch.Generator, n: int = 24) -> float:
    """Share of `n` fresh prefixes (left, right, bilateral, normal in turn) whose greedy report names exactly
    the side the prefix names (none for a normal one): does the warmed LM read its prefix?"""
    from brain3d.vocabulary import side_of

    text_model, head = model.model.language_model, model.lm_head
    embed = text_model.get_input_embeddings()
    sides = (["left"], ["right"], ["left", "right"], [])
    hits = 0
    for i in range(n):
        words = sides[i % 4] + (["frontal", "edema", "lesion"] if sides[i % 4] else [])
        vis = findings_prefix(words, word_emb, word_emb["normal"], rms, cfg, gen)
        embeds = torch.cat([embed(torch.tensor(layout.before, dtype=torch.long)), vis,
                            embed(torch.tensor(layout.after, dtype=torch.long))])[None]  # (1, T, d)
        ids: list[int] = []
        for _ in range(16):  # the side is named in the first sentence
            nxt = int(head(text_model(inputs_embeds=embeds).last_hidden_state[:, -1]).argmax(-1))
            ids.append(nxt)
            embeds = torch.cat([embeds, embed(torch.tensor([[nxt]]))], dim=1)
        said = side_of(tokenizer.decode(ids, skip_special_tokens=True))
        hits += said == {0: "left", 1: "right", 2: "bilateral", 3: None}[i % 4]
    return hits / n


def _word_ids(tokenizer, word: str) -> list[int]:
    """Token ids of a keyword as it appears inside a sentence (after a space)."""
    return list(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
