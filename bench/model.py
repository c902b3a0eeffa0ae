"""Encoder cost of the reference stem (kernel depth 2, depth stride 1, padding 1) vs brain3d's default
(kernel depth 2, depth stride 2) on a 64x128x128 volume: tokens per volume and forward time per volume,
measured in one run on a mid-size random SigLIP (hidden 256, 4 layers, patch 14) with the same weights.
Expected: about half the tokens (2,592 vs 5,265) and, attention being quadratic, more than 2x faster.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain3d.model.config import Brain3DConfig  # noqa: E402
from brain3d.model.encoder3d import Encoder3D  # noqa: E402

STEMS = {
    "parity": Brain3DConfig.parity("-", "-"),
    "default": Brain3DConfig("-", "-"),
}


def mid_size_vit(hidden: int, layers: int):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    cfg = SiglipVisionConfig(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                             num_attention_heads=max(hidden // 64, 1), patch_size=14, image_size=224,
                             vision_use_head=False, attn_implementation="sdpa")
    return SiglipVisionModel(cfg).eval()


def run(repeats: int = 3, hidden: int = 256, layers: int = 4, threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    vit = mid_size_vit(hidden, layers)
    volume = torch.rand(1, 1, 64, 128, 128)
    result: dict = {"hidden": hidden, "layers": layers, "threads": threads, "repeats": repeats, "volume": [64, 128, 128]}
    for name, cfg in STEMS.items():
        enc = Encoder3D(vit, cfg.in_channels, cfg.image_size, cfg.kernel_depth, cfg.depth_stride,
                        cfg.depth_padding, cfg.inflate_init, cfg.pos_embed).eval()
        times = []
        with torch.no_grad():
            enc(volume)  # warm-up
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = enc(volume)
                times.append(time.perf_counter() - t0)
        result[name] = {"tokens": int(out.shape[1]), "grid": list(enc.grid), "forward_s": float(np.median(times))}
    result["token_ratio"] = result["parity"]["tokens"] / result["default"]["tokens"]
    result["speedup"] = result["parity"]["forward_s"] / result["default"]["forward_s"]
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = run(a.repeats, a.hidden, a.layers, a.threads)
    if a.json:
        print(json.dumps(r))
    else:
        p, d = r["parity"], r["default"]
        print(f"encoder forward per 64x128x128 volume (hidden {r['hidden']}, {r['layers']} layers, {r['threads']} thread): "
              f"parity stem {p['tokens']} tokens {p['forward_s']:.2f} s, default stem {d['tokens']} tokens "
              f"{d['forward_s']:.2f} s; tokens x{r['token_ratio']:.2f}, speed-up x{r['speedup']:.2f}")
