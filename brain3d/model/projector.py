"""Projector: K vision tokens (dv) -> K soft tokens in the language model's input-embedding space (dlm).

Gemma multiplies its token embeddings by sqrt(hidden) (~50.6 for 2560) inside the model, but soft tokens
passed as `inputs_embeds` are not scaled. Left alone, the projector's output would be far below the text
tokens around it. brain3d therefore (soft_token_scale='text_rms') normalises each projected token to unit
RMS and multiplies it by `text_rms`, the RMS of the LM's *scaled* text-token embeddings (measured once from
the embedding table, see `embedding_rms`), and by the learnable gate `vis_scale` (init 1.0): at
initialisation a soft token has exactly the magnitude of a text token, and the gate learns any departure.
soft_token_scale='none' is the reference's behaviour (raw projector output times the gate).

Before the MLP, feature_norm='running' standardises every compressed token channel (k, c) with running
statistics over the training volumes. Encoder features are dominated by a subject-invariant part (position
structure, biases): on the tiny twin the across-subject spread is ~12% of the feature magnitude, and the
projector would have to learn a large gain to see a lesion at all. Standardising removes the common part and
leaves what differs between scans (the lesion, its side). The statistics are updated only in training mode
(cumulative average, then an EMA; all-reduced across processes so DDP replicas agree) and always used as
constants, so training and inference apply the same map and a batch of one is fine. They are saved with
the checkpoint. feature_norm='none' is the reference's behaviour.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningStandardizer(nn.Module):
    """(B, K, dv) -> (z - mean[k, c]) / sqrt(var[k, c] + eps), with statistics tracked in training mode."""

    def __init__(self, num_tokens: int, dim: int, min_momentum: float = 0.02, eps: float = 1e-5) -> None:
        super().__init__()
        self.min_momentum, self.eps = min_momentum, eps
        self.register_buffer("mean", torch.zeros(num_tokens, dim))
        self.register_buffer("var", torch.ones(num_tokens, dim))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        z = z.detach().float()
        total, squares, n = z.sum(0), z.pow(2).sum(0), float(z.shape[0])  # (K, dv), (K, dv), batch
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            count = torch.tensor(n, device=z.device)
            for t in (count, total, squares):
                torch.distributed.all_reduce(t)
            n = float(count.item())
        if n < 2:
            return
        mean = total / n
        var = (squares / n - mean.pow(2)).clamp_min(0) * (n / (n - 1))
        m = (1.0 / (self.count + 1)).clamp_min(self.min_momentum)  # cumulative average first, then EMA
        self.mean.lerp_(mean, m)
        self.var.lerp_(var, m)
        self.count += 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(z)
        return (z - self.mean) * torch.rsqrt(self.var + self.eps)  # (B, K, dv)


class Projector(nn.Module):
    """[standardise] - Linear(dv, dlm) - GELU - Linear(dlm, dlm), then scale (see module docstring) and gate."""

    def __init__(self, vision_dim: int, lm_dim: int, soft_token_scale: str = "text_rms",
                 feature_norm: str = "none", num_tokens: int = 32) -> None:
        super().__init__()
        self.feature_norm = RunningStandardizer(num_tokens, vision_dim) if feature_norm == "running" else None
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
        return self.project(self.standardize(tokens))

    def standardize(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, K, dv) -> (B, K, dv): the running standardiser when there is one (statistics update in training)."""
        return self.feature_norm(tokens) if self.feature_norm is not None else tokens

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """Standardised (B, K, dv) tokens -> (B, K, dlm) soft tokens: MLP, scale, gate."""
        y = self.fc2(self.act(self.fc1(tokens)))  # (B, K, dlm)
        if self.soft_token_scale == "text_rms":
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6) * self.text_rms
        return y * self.vis_scale


@torch.no_grad()
def embedding_rms(embedding: nn.Module, vocab_size: int, chunk: int = 16384) -> torch.Tensor:
    """RMS over the whole vocabulary of the LM's input embeddings *as the LM uses them* (the module's own
    forward, so Gemma's sqrt(hidden) scaling is included); chunked to keep memory flat for 262k tokens. Squares
    are taken in float32 and summed in float64 (a float64 copy of 262,208 x 2560 made up most of a model load;
    a float32 norm of a 42M-element chunk is 0.3% low)."""
    device = embedding.weight.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for start in range(0, vocab_size, chunk):
        ids = torch.arange(start, min(start + chunk, vocab_size), device=device)
        e = embedding(ids)  # (n, dlm)
        total = total + e.float().square().sum(-1).sum(dtype=torch.float64)  # rows in float32, then float64
        count += e.numel()
    return (total / count).sqrt().to(torch.float32)
