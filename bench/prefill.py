"""Prefill cost of Brain3D's 32 visual tokens vs a 64-slice 2D approach, on the same tiny language model.

A MedGemma-style 2D baseline shows the LM each of 64 axial slices as an image, and every image costs
`mm_tokens_per_image` soft tokens (read from the LM folder's config.json: 16 in the tiny twin, 256 in
MedGemma). Brain3D shows the LM K = 32 tokens for the whole volume. Both sequences carry the same prompt
(Brain3D's prompt layout). Measured: one prefill forward of the tiny Gemma-3 text model on `inputs_embeds`
of each length (KV cache on, logits of the last position only, as `generate` does), timed alternately.
The vision side (3D encoder vs 64 runs of a 2D tower) is not part of this number.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interleaved, set_threads, tiny_brain3d, tiny_models  # noqa: E402

# FACTS.md: MedGemma-1.5-4B-IT turns each image into 256 soft tokens; Brain3D gives the LM K = 32.
MEDGEMMA_TOKENS_PER_IMAGE = 256
SLICES = 64


def run(quick: bool = False, slices: int = SLICES, repeats: int | None = None, threads: int = 1,
        models: dict[str, Path] | None = None) -> dict:
    """Token counts and prefill seconds of both layouts on the tiny LM, plus the real models' token counts."""
    from brain3d.model.backbones import read_model_config

    set_threads(threads)
    repeats = repeats or (2 if quick else 20)
    with tempfile.TemporaryDirectory(prefix="brain3d-bench-prefill-") as tmp:
        models = models or tiny_models(tmp)
        model = tiny_brain3d(models, quick)
        per_image = int(read_model_config(models["language"])["mm_tokens_per_image"])
        embed = model.lm.get_input_embeddings()
        prompt = embed(torch.tensor([model.layout.after]))  # (1, P, dlm): bos + prompt, scaled by Gemma
        gen = torch.Generator().manual_seed(0)
        scale = float(prompt.pow(2).mean().sqrt())  # soft tokens at the scale of text embeddings

        def sequence(n_visual: int) -> torch.Tensor:
            vis = torch.randn(1, n_visual, prompt.shape[-1], generator=gen) * scale  # (1, n, dlm)
            return torch.cat([vis, prompt], dim=1)  # (1, n + P, dlm)

        k = model.config.num_tokens
        brain3d_seq, slices_seq = sequence(k), sequence(slices * per_image)

        @torch.no_grad()
        def prefill(x: torch.Tensor) -> None:
            model.lm(inputs_embeds=x, attention_mask=torch.ones(x.shape[:2], dtype=torch.long), use_cache=True,
                     logits_to_keep=1)

        seconds = interleaved({"brain3d": lambda: prefill(brain3d_seq), "slices": lambda: prefill(slices_seq)}, repeats)
        n_prompt = prompt.shape[1]
    real_2d = slices * MEDGEMMA_TOKENS_PER_IMAGE
    return {
        "threads": threads, "repeats": repeats, "prompt_tokens": n_prompt, "slices": slices,
        "tiny_tokens_per_image": per_image,
        "brain3d_visual_tokens": k, "slices_visual_tokens": slices * per_image,
        "brain3d_sequence": brain3d_seq.shape[1], "slices_sequence": slices_seq.shape[1],
        "brain3d_prefill_ms": round(1000 * seconds["brain3d"], 3), "slices_prefill_ms": round(1000 * seconds["slices"], 3),
        "token_ratio": round(slices_seq.shape[1] / brain3d_seq.shape[1], 2),
        "speedup": round(seconds["slices"] / seconds["brain3d"], 2),
        "real_models": {
            "tokens_per_image": MEDGEMMA_TOKENS_PER_IMAGE, "slices_visual_tokens": real_2d, "brain3d_visual_tokens": k,
            "visual_token_ratio": real_2d / k,
            "note": f"MedGemma: {slices} x {MEDGEMMA_TOKENS_PER_IMAGE} = {real_2d:,} image tokens (plus 2 image "
                    f"delimiters per slice) vs Brain3D's {k}, each plus the same prompt",
        },
    }


def describe(r: dict) -> str:
    return (f"prefill on the tiny LM: Brain3D {r['brain3d_visual_tokens']} visual + {r['prompt_tokens']} prompt = "
            f"{r['brain3d_sequence']} tokens in {r['brain3d_prefill_ms']:.1f} ms vs {r['slices']} slices x "
            f"{r['tiny_tokens_per_image']} + {r['prompt_tokens']} = {r['slices_sequence']} tokens in "
            f"{r['slices_prefill_ms']:.1f} ms -> {r['token_ratio']:.0f}x tokens, {r['speedup']:.1f}x time. "
            f"Real models: {r['real_models']['note']} ({r['real_models']['visual_token_ratio']:.0f}x).")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--slices", type=int, default=SLICES)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    a = ap.parse_args(argv)
    r = run(a.quick, a.slices, a.repeats, a.threads)
    print(json.dumps(r) if a.json else describe(r))
    return r


if __name__ == "__main__":
    main()
