"""Warm the tiny vision tower up the way Brain3D uses it: on whole phantom volumes, through the inflated stem.

The slice warm-up (`vision_pretrain`) trains the tower on 64-token 2D images; Brain3D runs the same blocks
over ~1,000 tokens of a volume at once, where attention spreads over 16x more tokens and per-patch lesion
detection learned in 2D degrades (measured on the demo cohort: a linear read-out of the slice-warmed tower's
3D tokens finds lesion tokens at recall 0.94 but with 3% false positives, too many to tell the side). MedSigLIP's
features are what a *3D* Brain3D reads after its own inflation, and the twin's should be too. So here the
tower's blocks learn, through `Encoder3D` exactly as Brain3D builds it (mean-inflated stem, resampled 2D
position table, zero depth embedding — none of which train here, so Brain3D's own inflation of the saved
tower reproduces this encoder), a dense per-token tissue task: the fraction of whole tumour, tumour core and
edema under every token, from the phantoms' label maps (a throw-away linear head reads them). Phantoms are
drawn with their own seed, never a cohort's; the tower never sees a report, a side label or a cohort subject.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.twin.vision_pretrain import VisionWarmup, phantom_volumes
from brain3d.twin.warmup import DONE, mean_of, warm_up

TARGETS = ("whole", "core", "edema")  # BraTS labels > 0, in (1, 4), == 2
HEAD_FILE = "brain3d_tissue_head.safetensors"  # the warm-up's read-out, kept beside the tower for diagnostics


@dataclass(frozen=True)
class VolumeWarmup:
    """How the tower is warmed up on volumes; the grid settings follow the 3D model that will use it."""

    subjects: int = 300
    steps: int = 1500
    batch_size: int = 8
    lr: float = 2e-3
    pos_weight: float = 4.0  # tumour tokens are rare: their BCE term counts this much more
    seed: int = 1  # phantoms drawn with this seed (the demo cohort uses 42)
    image_size: tuple[int, int, int] = (32, 64, 64)
    kernel_depth: int = 2
    depth_stride: int = 2
    voxel_mm: float = 2.0  # as the demo cohort: rendered at 3 mm, the tower's read-out lost its way on 2 mm scans
    nonzero: bool = True  # intensity statistics over the brain, as the tiny training profile scales its scans
    scaling: str = "median"  # as the tiny training profile


def token_targets(labels: np.ndarray, image_size: tuple[int, int, int], patch: int, kernel_depth: int,
                  depth_stride: int) -> torch.Tensor:
    """(D, H, W) BraTS labels in model axes -> (N, 3) fractions of whole tumour / core / edema under each token
    of the (Dp, Hp, Wp) grid, in the encoder's (d, h, w) token order."""
    from brain3d.preprocess import resize

    lab = torch.from_numpy(np.asarray(labels))
    masks = torch.stack([(lab > 0), (lab == 1) | (lab == 4), (lab == 2)]).float()  # (3, D, H, W)
    masks = resize(masks, image_size)  # (3, D', H', W') trilinear fractions
    frac = F.avg_pool3d(masks[None], (kernel_depth, patch, patch), (depth_stride, patch, patch))[0]  # (3, Dp, Hp, Wp)
    return frac.flatten(1).T.contiguous()  # (N, 3)


def _dataset(cfg: VolumeWarmup, patch: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Volumes (S, 1, D, H, W) and their token targets (S, N, 3)."""
    slices_cfg = VisionWarmup(subjects=cfg.subjects, seed=cfg.seed, image_size=cfg.image_size,
                              kernel_depth=cfg.kernel_depth, voxel_mm=cfg.voxel_mm, nonzero=cfg.nonzero,
                              scaling=cfg.scaling)
    vols, targets = [], []
    for vol, labels in phantom_volumes(slices_cfg, progress):
        vols.append(vol[None])
        targets.append(token_targets(labels, cfg.image_size, patch, cfg.kernel_depth, cfg.depth_stride))
    return torch.stack(vols), torch.stack(targets)


def pretrain_vision_volumes(folder: str | Path, cfg: VolumeWarmup = VolumeWarmup(), progress: bool = False) -> dict:
    """Warm up the `SiglipModel` in `folder` on phantom volumes (see the module docstring); save it in place.

    Returns a summary with held-out measurements on phantoms the warm-up never saw: token recall and false-
    positive rate of the read-out for whole tumour (tokens >= 30 % tumour / tumour-free), and the side
    accuracy of one-sided lesions from which hemisphere holds more detected tokens."""
    from transformers import SiglipModel

    from brain3d.model.backbones import quiet_transformers
    from brain3d.model.encoder3d import Encoder3D

    folder = Path(folder)
    with quiet_transformers():
        model = SiglipModel.from_pretrained(folder, dtype=torch.float32)
    vit = model.vision_model
    torch.manual_seed(cfg.seed)
    enc = Encoder3D(vit, 1, cfg.image_size, cfg.kernel_depth, cfg.depth_stride, 0, "mean", "pretrained")
    patch = enc.patch_size
    vols, targets = _dataset(cfg, patch, progress)
    held_cfg = VolumeWarmup(**{**asdict(cfg), "seed": cfg.seed + 7919, "subjects": max(8, cfg.subjects // 5)})
    held_vols, held_targets = _dataset(held_cfg, patch, False)
    head = torch.nn.Linear(enc.dim, len(TARGETS))
    params = list(vit.encoder.parameters()) + list(vit.post_layernorm.parameters()) + list(head.parameters())
    gen = torch.Generator().manual_seed(cfg.seed)
    pos_weight = torch.full((len(TARGETS),), cfg.pos_weight)
    dp, hp, wp = enc.grid

    def step_loss() -> torch.Tensor:
        idx = torch.randint(len(vols), (cfg.batch_size,), generator=gen)
        x, y = vols[idx], targets[idx]  # (B, 1, D, H, W), (B, N, 3)
        flip = torch.rand(cfg.batch_size, generator=gen) < 0.5  # mirror the volume and its token targets together
        x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
        y_grid = y.reshape(-1, dp, hp, wp, len(TARGETS))
        y = torch.where(flip[:, None, None, None, None], y_grid.flip(3), y_grid).reshape_as(y)
        return F.binary_cross_entropy_with_logits(head(enc(x)), y, pos_weight=pos_weight)

    vit.train()
    losses = warm_up(params, step_loss, cfg.steps, cfg.lr, max(1, cfg.steps // 15), "tiny vision: phantom volumes", progress)
    vit.eval()
    summary = {"steps": cfg.steps, "first_loss": mean_of(losses), "last_loss": mean_of(losses, last=True),
               "subjects": int(len(vols)), "held_out_subjects": int(len(held_vols)),
               **held_out_volume_measures(enc, head, held_vols, held_targets), "config": asdict(cfg)}
    from safetensors.torch import save_file

    with quiet_transformers(), atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        save_file({k: v.detach().contiguous() for k, v in head.state_dict().items()}, str(tmp / HEAD_FILE),
                  metadata={"targets": ",".join(TARGETS)})
        atomic_write_json(tmp / DONE, summary)
    return summary


@torch.no_grad()
def held_out_volume_measures(enc, head: torch.nn.Module, vols: torch.Tensor, targets: torch.Tensor,
                             threshold: float = 0.3) -> dict:
    """Token recall / false-positive rate of the whole-tumour read-out, and side accuracy on one-sided lesions
    (the hemisphere with more detected tokens, W < Wp/2 being the patient's left)."""
    dp, hp, wp = enc.grid
    hit = torch.cat([head(enc(vols[i:i + 8]))[..., 0] > 0 for i in range(0, len(vols), 8)])  # (S, N)
    whole = targets[..., 0]  # (S, N)
    lesion, clean = whole >= threshold, whole == 0
    hit_g, whole_g = hit.reshape(-1, dp, hp, wp).float(), whole.reshape(-1, dp, hp, wp)
    left_true, right_true = whole_g[..., : wp // 2].sum((1, 2, 3)), whole_g[..., wp // 2:].sum((1, 2, 3))
    one_sided = ((left_true == 0) ^ (right_true == 0)) & ((left_true + right_true) > 0)
    said_left = hit_g[..., : wp // 2].sum((1, 2, 3)) > hit_g[..., wp // 2:].sum((1, 2, 3))
    side_ok = (said_left == (left_true > 0))[one_sided]
    return {"held_out_token_recall": float(hit[lesion].float().mean()) if bool(lesion.any()) else float("nan"),
            "held_out_token_fpr": float(hit[clean].float().mean()),
            "held_out_side_accuracy": float(side_ok.float().mean()) if bool(one_sided.any()) else float("nan"),
            "held_out_one_sided": int(one_sided.sum())}
