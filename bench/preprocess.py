"""Preprocessing speed: brain3d (nibabel + numpy + torch) vs a MONAI pipeline doing the same steps.

Both read the same realistic 240×240×155 NIfTI volumes (stored LPS, like many scanners), orient to RAS,
scale p1/p99 → [0, 1] with clipping, and resize trilinearly to 64×128×128. Prints the time ratio and the
maximum absolute difference of the outputs, measured in one run. Goal: ≥ 1.3× faster, equal to 1e-4.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain3d.orientation import RAS_TO_MODEL  # noqa: E402
from brain3d.preprocess import PreprocessConfig, load_for_model  # noqa: E402


def make_volumes(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """Brain-like 240×240×155 volumes (1 mm, LPS storage), with smooth structure and noise."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(np.linspace(-1, 1, 240), np.linspace(-1, 1, 240), np.linspace(-1, 1, 155), indexing="ij")
    paths = []
    for i in range(n):
        head = (x**2 / 0.6 + y**2 / 0.8 + z**2 / 0.7) < 1
        vol = head * (400 + 200 * np.sin(6 * x + i) * np.cos(4 * y)) + rng.normal(0, 20, x.shape)
        affine = np.diag([-1.0, -1.0, 1.0, 1.0])
        affine[:3, 3] = [120, 120, -77]
        p = folder / f"vol{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.clip(vol, 0, None).astype(np.float32), affine), str(p))
        paths.append(p)
    return paths


def monai_pipeline(size):
    from monai.transforms import (Compose, EnsureChannelFirst, LoadImage, Orientation, Resize,
                                  ScaleIntensityRangePercentiles)

    return Compose([
        LoadImage(image_only=True),
        EnsureChannelFirst(),
        Orientation(axcodes="RAS"),
        ScaleIntensityRangePercentiles(lower=1, upper=99, b_min=0.0, b_max=1.0, clip=True),
        Resize(spatial_size=(size[2], size[1], size[0]), mode="trilinear", align_corners=False),
    ])


def run(n: int = 4, repeats: int = 2) -> dict:
    torch.set_num_threads(2)
    cfg = PreprocessConfig()
    pipe = monai_pipeline(cfg.size)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_volumes(Path(tmp), n)
        ours_t, monai_t, max_diff = [], [], 0.0
        load_for_model(paths[0], cfg), pipe(str(paths[0]))  # warm-up both
        for _ in range(repeats):
            for p in paths:
                t0 = time.perf_counter()
                ours = load_for_model(p, cfg).tensor
                t1 = time.perf_counter()
                ref = pipe(str(p))  # (1, X, Y, Z) RAS
                t2 = time.perf_counter()
                ours_t.append(t1 - t0)
                monai_t.append(t2 - t1)
                ref_model = torch.as_tensor(np.asarray(ref)).permute(0, *(a + 1 for a in RAS_TO_MODEL))
                max_diff = max(max_diff, float((ours - ref_model.float()).abs().max()))
    result = {
        "volumes": n, "repeats": repeats, "shape": [240, 240, 155], "target": list(cfg.size),
        "brain3d_ms": 1000 * float(np.median(ours_t)), "monai_ms": 1000 * float(np.median(monai_t)),
        "max_abs_diff": max_diff,
    }
    result["speedup"] = result["monai_ms"] / result["brain3d_ms"]
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = run(a.n, a.repeats)
    if a.json:
        print(json.dumps(r))
    else:
        print(f"preprocess 240x240x155 -> 64x128x128: brain3d {r['brain3d_ms']:.0f} ms, MONAI {r['monai_ms']:.0f} ms, "
              f"speed-up {r['speedup']:.2f}x, max |diff| {r['max_abs_diff']:.2e}")
