"""Projector: K vision tokens (dv) -> K soft tokens in the language model's input-embedding space (dlm).

Gemma multiplies its token embeddings by sqrt(hidden) (~50.6 for 2560) inside the model, but soft tokens
passed as `inputs_embeds` are not scaled. Left alone, the projector's output would be far below the text
tokens around it. brain3d therefore (soft_token_scale='text_rms') normalises each projected token to unit
RMS and multiplies it by `text_rms`, the RMS of the LM's *scaled* text-token embeddings (measured once from
the embedding table, see `embedding_rms`), and by the learnable gate `vis_scale` (init 1.0): at
initialisation a soft token has exactly the magnitude of a text token, and the gate learns any departure.
soft_token_scale='none' is the reference's behaviour (raw projector output times the gate).
"""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """Linear(dv, dlm) - GELU - Linear(dlm, dlm), then scale (see module docstring) and gate."""

    def __init__(self, vision_dim: int, lm_dim: int, soft_token_scale: str = "text_rms") -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, lm_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(lm_dim, lm_dim)
        self.vis_scale = nn.Parameter(torch.tensor(1.0))
        self.soft_token_scale = soft_token_scale
        self.register_buffer("text_rms", torch.tensor(1.0), persistent=False)
        for layer in (self.fc1, self.fc2):  # the reference's init: Xavier uniform, gain 0.5, zero bias
            nn.init.xavier_uniform_(layer.weight, gain=0.5)
            nn.init.zeros_(layer.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y = self.fc2(self.act(self.fc1(tokens)))  # (B, K, dlm)
        if self.soft_token_scale == "text_rms":
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6) * self.text_rms
        return y * self.vis_scale


@torch.no_grad()
def embedding_rms(embedding: nn.Module, vocab_size: int, chunk: int = 8192) -> torch.Tensor:
    """RMS over the whole vocabulary of the LM's input embeddings *as the LM uses them* (the module's own
    forward, so Gemma's sqrt(hidden) scaling is included); chunked to keep memory flat for 262k tokens."""
    device = embedding.weight.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for start in range(0, vocab_size, chunk):
        ids = torch.arange(start, min(start + chunk, vocab_size), device=device)
        e = embedding(ids).to(torch.float64)  # (n, dlm)
        total = total + e.pow(2).sum()
        count += e.numel()
    return (total / count).sqrt().to(torch.float32)
