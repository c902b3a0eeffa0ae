"""Teach the tiny twin's vision tower to see, 2D only, before any Brain3D phase.

MedSigLIP arrives pretrained on medical image–text pairs: its patch tokens already say "abnormal signal
here". A random-initialised tiny SigLIP does not, and with it frozen (as the method freezes the ViT blocks)
the soft tokens carry almost nothing a report could be conditioned on (measured: a linear probe decodes the
lesion side from the random tower's compressed tokens at 0.62–0.72). So, as the tiny LM is warmed up on
report text, the tiny `SiglipModel` is warmed up the way SigLIP itself is trained: a sigmoid image–text loss
on 2D images and their captions, here axial slices of *separately drawn* phantoms (their own seed, never a
cohort subject) and short captions of what each slice shows (lesion or not, in which half of the image
columns and rows, with or without a necrotic core). It learns what any pretrained tower knows about images;
it never sees a volume, a report or a patient side: "column half" is image geometry, and turning it into
"left"/"right" in a report is still the job of the 3D stem, the orientation helper and phases 1–2B.
The folder keeps its class and layout, so it loads through the same code path as MedSigLIP.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from brain3d.fsutil import atomic_dir, atomic_write_json
from brain3d.twin.warmup import DONE, mean_of, warm_up

# caption slots and their words; ids are positions in CAPTION_WORDS offset past SigLIP's pad/bos/eos (0/1/2)
PRESENCE = ("normal", "lesion")
HALVES = ("none", "low", "high", "both")  # which half (along the image axis) holds lesion pixels
CORE = ("none", "solid", "necrotic")
CAPTION_WORDS = (*PRESENCE, *(f"col-{h}" for h in HALVES), *(f"row-{h}" for h in HALVES), *(f"core-{c}" for c in CORE))
_FIRST_ID = 3
BRATS_NECROSIS = 1


@dataclass(frozen=True)
class VisionWarmup:
    """How the tiny vision tower is warmed up; `image_size` and `kernel_depth` follow the 3D model so the
    2D slices look like what one tubelet of the inflated stem sees."""

    subjects: int = 200
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    patch_weight: float = 1.0  # weight of the per-patch tissue loss next to the image-caption loss
    patch_pos_weight: float = 4.0  # lesion patches are rare: their BCE term counts this much more
    seed: int = 0
    image_size: tuple[int, int, int] = (32, 64, 64)  # (D, H, W) model grid the slices are cut from
    kernel_depth: int = 2  # slices are means of this many adjacent model slices (a mean-inflated tubelet)
    voxel_mm: float = 4.0  # phantoms rendered coarser than the cohort: 8x faster, the slices are 64 x 64 anyway
    min_pixels: int = 12  # lesion pixels a half needs to count in a caption; slices with fewer (but some) are left out
    nonzero: bool = True  # intensity statistics over the brain, as the tiny training profile scales its scans
    scaling: str = "median"  # as the tiny training profile (brain3d.preprocess.PreprocessConfig)


@dataclass
class SliceSet:
    """Axial slices (N, H, W) in [0, 1], their caption word ids (N, 4) and lesion masks (N, H, W) bool."""

    images: torch.Tensor
    captions: torch.Tensor
    masks: torch.Tensor


def phantom_volumes(cfg: VisionWarmup, progress: bool = False) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """Render `cfg.subjects` phantoms (sides cycle left, right, bilateral, healthy) with seed `cfg.seed` and
    bring each into model space through the orientation helper and the model's own preprocessing (p1/p99,
    trilinear resize): yields ((D, H, W) volume in [0, 1], (D, H, W) BraTS labels on the scan's own grid in
    model axes)."""
    from brain3d.io import Volume
    from brain3d.orientation import orientation_codes, spacing_of, to_model_axes
    from brain3d.preprocess import PreprocessConfig, preprocess_volume
    from brain3d.anatomy.atlas import load_atlas
    from brain3d.synth.phantom import render, sample_subject

    atlas = load_atlas(2)
    sides = ("left", "right", "bilateral", None)
    iterator = range(cfg.subjects)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="tiny vision: phantoms", leave=False)
    for i in iterator:
        spec = sample_subject(cfg.seed, i, sides[i % len(sides)], atlas, cfg.voxel_mm)
        rendered = render(spec, atlas, ("flair",))
        data, affine = to_model_axes(rendered.images["flair"].astype(np.float32), rendered.affine)  # (D, H, W)
        labels, _ = to_model_axes(rendered.labels, rendered.affine)
        scan = Volume(data, affine, spacing_of(affine), orientation_codes(rendered.affine), spec.subject_id, ("flair",))
        yield preprocess_volume(scan, PreprocessConfig(size=cfg.image_size, nonzero=cfg.nonzero, scaling=cfg.scaling)).tensor[0], labels


def phantom_slices(cfg: VisionWarmup, progress: bool = False) -> SliceSet:
    """Captioned axial slices of `phantom_volumes`: the means of `kernel_depth` adjacent model slices (what one
    tubelet of the mean-inflated stem sees), slices with (almost) no brain left out."""
    images, captions, masks = [], [], []
    for vol, labels in phantom_volumes(cfg, progress):
        lesion = _resize_mask(labels > 0, cfg.image_size)
        core = _resize_mask(labels == BRATS_NECROSIS, cfg.image_size)
        k = cfg.kernel_depth
        d = cfg.image_size[0] // k * k
        slabs = vol[:d].reshape(d // k, k, *vol.shape[1:]).mean(1)  # (D/k, H, W): what one tubelet sees
        les = lesion[:d].reshape(d // k, k, *lesion.shape[1:]).any(1)
        cor = core[:d].reshape(d // k, k, *core.shape[1:]).any(1)
        for s in range(slabs.shape[0]):
            if float((slabs[s] > 0.05).float().mean()) < 0.05:  # (almost) no brain in this slab
                continue
            if 0 < int(les[s].sum()) < cfg.min_pixels:  # a lesion's faint pole: neither caption would be true
                continue
            images.append(slabs[s])
            masks.append(les[s])
            captions.append(caption_of(les[s], cor[s], cfg.min_pixels))
    return SliceSet(torch.stack(images), torch.tensor(captions, dtype=torch.long), torch.stack(masks))


def _resize_mask(mask: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """Boolean (D, H, W) mask on the model grid (trilinear fraction >= 0.5)."""
    from brain3d.preprocess import resize

    return resize(torch.from_numpy(mask.astype(np.float32))[None], size)[0] >= 0.5


def caption_of(lesion: torch.Tensor, core: torch.Tensor, min_pixels: int) -> list[int]:
    """Word ids [presence, column half, row half, core] of one (H, W) slice's lesion and necrosis masks."""
    h, w = lesion.shape

    def halves(low: int, high: int) -> str:
        return HALVES[(low >= min_pixels) + 2 * (high >= min_pixels)]

    col = halves(int(lesion[:, : w // 2].sum()), int(lesion[:, w // 2:].sum()))
    row = halves(int(lesion[: h // 2].sum()), int(lesion[h // 2:].sum()))
    present = col != "none"
    words = [PRESENCE[int(present)], f"col-{col}", f"row-{row}",
             "core-" + ("none" if not present else ("necrotic" if int(core.sum()) >= min_pixels else "solid"))]
    return [_FIRST_ID + CAPTION_WORDS.index(word) for word in words]


def mirror_captions(captions: torch.Tensor) -> torch.Tensor:
    """Captions of column-mirrored slices: col-low <-> col-high."""
    low, high = (_FIRST_ID + CAPTION_WORDS.index(f"col-{h}") for h in ("low", "high"))
    col = captions[:, 1]
    out = captions.clone()
    out[:, 1] = torch.where(col == low, high, torch.where(col == high, low, col))
    return out


def sigmoid_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                 same: torch.Tensor) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss with every pair of equal captions a positive (captions repeat)."""
    img = F.normalize(img, dim=-1)  # (B, d)
    txt = F.normalize(txt, dim=-1)  # (B, d)
    logits = img @ txt.T * scale.exp() + bias  # (B, B)
    labels = same.float() * 2 - 1
    return -F.logsigmoid(labels * logits).sum(1).mean()


def pretrain_vision_model(folder: str | Path, cfg: VisionWarmup = VisionWarmup(), progress: bool = False) -> dict:
    """Warm up the `SiglipModel` in `folder` on captioned phantom slices and save it back in place.

    Two losses on one forward pass: SigLIP's image-caption sigmoid loss on the pooled embedding, and a
    per-patch tissue loss (a throw-away linear probe predicts each patch's lesion fraction from its token), so
    that the patch tokens themselves — what Brain3D reads — say where abnormal tissue is, as a pretrained
    medical tower's do. Returns a summary with held-out measurements on phantoms the warm-up never saw:
    caption accuracy (nearest caption among those present) and patch recall / false-positive rate."""
    from transformers import SiglipModel

    from brain3d.model.backbones import quiet_transformers

    folder = Path(folder)
    with quiet_transformers():
        model = SiglipModel.from_pretrained(folder, dtype=torch.float32)
    data = phantom_slices(cfg, progress)
    held = phantom_slices(VisionWarmup(**{**asdict(cfg), "seed": cfg.seed + 7919, "subjects": max(4, cfg.subjects // 6)}))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    probe = torch.nn.Linear(model.config.vision_config.hidden_size, 1)
    params = [p for p in model.parameters() if p.requires_grad] + list(probe.parameters())
    weights = _balanced_weights(data.captions)
    pos_weight = torch.tensor(cfg.patch_pos_weight)
    patch = model.config.vision_config.patch_size

    def step_loss() -> torch.Tensor:
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
        images, captions, masks = data.images[idx], data.captions[idx], data.masks[idx]  # (B, H, W), (B, 4), (B, H, W)
        flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
        images = torch.where(flip[:, None, None], images.flip(-1), images)
        masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
        captions = torch.where(flip[:, None], mirror_captions(captions), captions)
        out = _vision(model, images)
        same = (captions[:, None, :] == captions[None, :, :]).all(-1)  # (B, B)
        loss = sigmoid_loss(out.pooler_output, embed_captions(model, captions), model.logit_scale, model.logit_bias, same)
        patch_logits = probe(out.last_hidden_state)[..., 0]  # (B, P)
        return loss + cfg.patch_weight * F.binary_cross_entropy_with_logits(
            patch_logits, patch_fractions(masks, patch), pos_weight=pos_weight)

    model.train()
    losses = warm_up(params, step_loss, cfg.steps, cfg.lr, max(1, cfg.steps // 15),
                     "tiny vision: phantom-slice warm-up", progress)
    model.eval()
    summary = {"steps": cfg.steps, "first_loss": mean_of(losses), "last_loss": mean_of(losses, last=True),
               "slices": int(len(data.images)), "held_out_slices": int(len(held.images)),
               **held_out_measures(model, probe, held), "config": asdict(cfg)}
    with quiet_transformers(), atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / DONE, summary)
    return summary


def patch_fractions(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, H, W) bool masks -> (B, P) share of lesion pixels in each patch, in the tower's token order."""
    return F.avg_pool2d(masks.float()[:, None], patch).flatten(1)


@torch.no_grad()
def held_out_measures(model, probe: torch.nn.Module, data: SliceSet, threshold: float = 0.3) -> dict:
    """One pass of the tower over held-out slices gives: caption accuracy (the best-scoring caption, among the
    distinct captions present, is the slice's own), patch recall (patches >= `threshold` lesion) and patch
    false-positive rate (lesion-free patches) of the probe."""
    model.eval()
    out = _vision(model, data.images)
    distinct, inverse = torch.unique(data.captions, dim=0, return_inverse=True)
    txt = embed_captions(model, distinct)  # (C, d)
    scores = F.normalize(out.pooler_output, dim=-1) @ F.normalize(txt, dim=-1).T  # (N, C)
    hit = probe(out.last_hidden_state)[..., 0] > 0  # (N, P)
    frac = patch_fractions(data.masks, model.config.vision_config.patch_size)
    lesion, clean = frac >= threshold, frac == 0
    return {"held_out_caption_accuracy": float((scores.argmax(1) == inverse).float().mean()),
            "held_out_patch_recall": float(hit[lesion].float().mean()) if bool(lesion.any()) else float("nan"),
            "held_out_patch_fpr": float(hit[clean].float().mean())}


def _vision(model, images: torch.Tensor):
    """(B, H, W) grey slices in [0, 1] -> the vision tower's output: in as RGB with SigLIP's normalisation,
    exactly as the inflated 3D stem normalises a volume."""
    pixels = ((images - 0.5) / 0.5)[:, None].expand(-1, 3, -1, -1)  # (B, 3, H, W)
    return model.vision_model(pixel_values=pixels, interpolate_pos_encoding=True)


def embed_captions(model, captions: torch.Tensor) -> torch.Tensor:
    """(B, 4) caption word ids -> (B, d) (bos ... eos; SigLIP's text tower pools the last token)."""
    ids = torch.cat([torch.ones_like(captions[:, :1]), captions, torch.full_like(captions[:, :1], 2)], 1)  # (B, 6)
    return model.text_model(input_ids=ids).pooler_output  # (B, d)


def _balanced_weights(captions: torch.Tensor) -> torch.Tensor:
    """Sampling weights giving every distinct caption the same total mass (lesion slices are the minority)."""
    _, inverse, counts = torch.unique(captions, dim=0, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].double()
