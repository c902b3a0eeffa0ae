"""Offline skull stripping of raw healthy scans with deepbet's network, loaded from its installed wheel.

Chosen by Dice on phantoms with a planted skull, scalp and neck (`synth.skull`; 8 subjects, 2 mm, six
storage orientations, some with 4 mm slices; table in README): deepbet 0.986 on FLAIR and on T1 (min 0.983),
brainextractor (FSL BET in Python) 0.955 (min 0.912, on 4 mm slices), ANTsPy N4 + affine registration of the
MNI brain mask 0.845 (0.98 when the registration converges, ~0.70 in 4 of 8 where it does not; with SyN
0.761) — although that method is favoured here, since a phantom's anatomy *is* the MNI template under an
affine pose. ANTsPy also pins numpy < 2.4 and scipy < 1.16, so it cannot join this package's stack.
deepbet ships its two TorchScript networks inside the wheel (nothing is downloaded):
a 128³ bounding-box net and a 256³ U-Net, trained on T1w. Loading is safe by construction: each file's
SHA-256 must match the wheel's, and a TorchScript archive is read by TorchScript's own restricted
unpickler (tensors and TorchScript code only, never a Python callable) — not `torch.load`'s pickle.

The pipeline is deepbet's `BrainExtraction.run_model` + `postprocess` (same sizes, interpolation,
normalisation and thresholds), with scipy in place of its cc3d / fill_voids helpers. It runs on the RAS
array, as deepbet does (the network was trained on canonical RAS volumes).

Failure cases (measured on phantoms, Dice): T2 contrast 0.88 (it over-segments by ~30%: the bright CSF
around the brain is taken in; strip FLAIR or T1w, not T2w); thick slices hold up (6 mm: 0.979; 4 mm isotropic: 0.977); a tumour inside
the brain does not disturb it (0.986). By construction: a scan whose head is not the largest bright object
(the bounding-box net then crops the wrong region), and a lesion at the brain's surface as bright as the
scalp may be cut away — which is why only the healthy controls are stripped here (BraTS ships stripped).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from brain3d.errors import Brain3DError, VolumeError
from brain3d.io import Volume
from brain3d.orientation import model_to_ras, to_model_axes

# deepbet 1.0.2's networks, as shipped in its wheel (data/models/ beside the deepbet package)
WEIGHTS = {
    "bbox_model.pt": "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa",
    "model.pt": "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
}
SMALL = (128, 128, 128)
FULL = (256, 256, 256)
BBOX_MARGIN = 0.1
THRESHOLD = 0.5


def weights_dir() -> Path:
    """deepbet's installed model folder, found without importing deepbet (its GUI imports are heavy)."""
    spec = importlib.util.find_spec("deepbet")
    if spec is None or spec.origin is None:
        raise Brain3DError("deepbet is not installed; it carries the skull-stripping network (pip install deepbet==1.0.2)")
    return Path(spec.origin).resolve().parents[1] / "data" / "models"


@lru_cache(maxsize=2)
def load_networks(device: str = "cpu") -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    """(bounding-box net, brain net) after checking each file's SHA-256 against the wheel's."""
    folder = weights_dir()
    nets = []
    for name, digest in WEIGHTS.items():
        path = folder / name
        if not path.is_file():
            raise Brain3DError("deepbet's network file is missing; reinstall deepbet==1.0.2", path)
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise Brain3DError("is not the network deepbet 1.0.2 ships (SHA-256 differs); refusing to load it", path)
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript loading; it still works, and is the safe path
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
            nets.append(torch.jit.load(str(path), map_location=device).eval())
    return nets[0], nets[1]


def brain_mask(vol: Volume, device: str = "cpu") -> np.ndarray:
    """Boolean brain mask (D, H, W) of a raw head scan in model axes."""
    data = vol.data if vol.data.ndim == 3 else vol.data[0]
    ras, ras_affine = model_to_ras(data, vol.affine)
    try:
        mask_ras = _run(np.nan_to_num(ras.astype(np.float32)), device)
    except ValueError as exc:
        raise VolumeError(f"cannot be skull-stripped ({exc})", vol.source) from None
    mask, _ = to_model_axes(mask_ras.astype(np.uint8), ras_affine)
    if not mask.any():
        raise VolumeError("skull stripping found no brain", vol.source)
    return mask.astype(bool)


def strip(vol: Volume, device: str = "cpu") -> tuple[Volume, np.ndarray]:
    """The scan with every voxel outside the brain set to 0 (same grid and affine), and the mask."""
    mask = brain_mask(vol, device)
    data = np.where(mask, vol.data, 0.0).astype(np.float32)
    return replace(vol, data=data), mask


def _normalise(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    x = ((x - low) / (high - low)).clamp(0, 1)
    x = (x - x.mean()) / x.std()
    return 0.226 * x + 0.449


def _largest(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask.astype(bool)
    return labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)


@torch.no_grad()
def _run(x_np: np.ndarray, device: str) -> np.ndarray:
    bbox_net, net = load_networks(device)
    x = torch.from_numpy(np.ascontiguousarray(x_np)).to(device)
    x_small = F.interpolate(x[None, None], SMALL, mode="nearest-exact")[0, 0]
    low, high = x_small.quantile(0.005), x_small.quantile(0.995)
    if float(high - low) <= 0:
        raise ValueError("the scan has no intensity spread")
    small = bbox_net(_normalise(x_small, low, high)[None, None])[0, 1]
    small = _largest(small.cpu().numpy() > 0.5)
    box = _bbox(small, x.shape)
    crop = F.interpolate(x[box][None, None], FULL, mode="nearest-exact")[0, 0]
    prob = net(_normalise(crop, low, high)[None, None])[0, 1]
    full = np.zeros(x.shape, dtype=bool)
    full[box] = F.interpolate(prob[None, None], x[box].shape, mode="nearest-exact")[0, 0].cpu().numpy() > THRESHOLD
    full[box] = ndi.binary_fill_holes(_largest(full[box]))
    return full


def _bbox(small: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """deepbet's crop: the small mask's extent (rows with > 2% foreground), scaled up, 10% margin per side."""
    out = []
    for axis, n in enumerate(shape):
        profile = small.mean(axis=tuple(a for a in range(3) if a != axis))
        rows = np.flatnonzero(profile > 0.02)
        if rows.size == 0:
            raise ValueError("the bounding-box network found no head")
        scale = n / small.shape[axis]
        centre = round((rows.max() + 1 + rows.min()) / 2 * scale)
        size = round((1 + 2 * BBOX_MARGIN) * (rows.max() + 1 - rows.min()) * scale)
        out.append(slice(max(0, int(centre - size / 2)), min(n, int(centre + size / 2))))
    return tuple(out)  # type: ignore[return-value]
