"""Teach the tiny twin's language model the report language, text only, before any Brain3D phase.

MedGemma arrives pretrained; a random-initialised tiny Gemma-3 does not. So that the tiny twin plays the
same role in the demo, its text model is briefly trained as a plain causal LM on synthetic report text
(no images, no per-subject pairing): it learns how reports are worded, never which report fits which scan.
What a report says about a particular scan must still come from the visual tokens learned in phases 1–2B.
The folder keeps its original class and layout, so it loads through the same code path as MedGemma.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.twin.warmup import mean_of, warm_up


def pretrain_language_model(folder: str | Path, corpus: Sequence[str], steps: int = 300, batch_size: int = 32,
                            lr: float = 3e-3, seed: int = 0, progress: bool = False) -> dict:
    """Train the text model of a Gemma-3 multimodal folder on `corpus` and save it back in place.

    Returns {"steps", "first_loss", "last_loss"} (mean token cross-entropy of the first and last 10 steps).
    """
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    from brain3d.model.backbones import quiet_transformers

    folder = Path(folder)
    with quiet_transformers():
        model = Gemma3ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    text_model, head = model.model.language_model, model.lm_head
    params = list({id(p): p for p in (*text_model.parameters(), *head.parameters())}.values())  # lm_head is tied
    eos = tokenizer.eos_token
    texts = [t.strip() + eos for t in corpus]

    def step_loss() -> torch.Tensor:
        idx = torch.randint(len(texts), (batch_size,), generator=gen).tolist()
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=256)
        hidden = text_model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state  # (B, T, d)
        logits = head(hidden[:, :-1])  # (B, T-1, V)
        target = enc.input_ids[:, 1:].masked_fill(enc.attention_mask[:, 1:] == 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    model.train()
    losses = warm_up(params, step_loss, steps, lr, 20, "tiny LM: report language", progress)
    model.eval()
    summary = {"steps": steps, "first_loss": mean_of(losses), "last_loss": mean_of(losses, last=True), "corpus": len(texts)}
    with quiet_transformers(), atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for extra in folder.iterdir():  # generation and processor configs: the folder keeps its layout
            if extra.is_file() and not (tmp / extra.name).exists():
                (tmp / extra.name).write_bytes(extra.read_bytes())
        atomic_write_json(tmp / "brain3d_pretraining.json", summary)
    return summary
