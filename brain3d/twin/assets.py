"""Warmed-up twin weights shipped with the package, so the demo does not spend its budget on pretraining.

A user downloads MedSigLIP and MedGemma once; the tiny twin's counterpart is this folder: the result of the
warm-ups of `make_pretrained_twin` for the default recipe, stored as safetensors (never pickle), each file named
by a digest of everything that produced it (which warm-up, its settings, the twin's seed and grid). When the
digest of a requested warm-up matches a shipped file, its weights are loaded instead of recomputed; anything
else (another seed, grid or recipe) is warmed up as before. `brain3d twin-assets` (a maintainer's command) rebuilds
the shipped files from scratch (about 4 minutes on 2 CPU cores); a test checks that they match the current recipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ASSET_DIR = Path(__file__).resolve().parent / "assets"
TWIN_VERSION = 1  # bump when the warm-up code changes what a recipe produces


def asset_key(spec: dict[str, Any]) -> str:
    """Digest of a warm-up's full specification (JSON, sorted keys): the asset's identity."""
    text = json.dumps({**spec, "twin_version": TWIN_VERSION}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def asset_path(part: str, spec: dict[str, Any], folder: Path = ASSET_DIR) -> Path:
    return folder / f"{part}-{asset_key(spec)}.safetensors"


def load_asset(model_dir: Path, part: str, spec: dict[str, Any], folder: Path = ASSET_DIR) -> dict | None:
    """Load the shipped weights of this warm-up into the model folder (saved in place, with its summary);
    returns the summary, or None when no asset matches."""
    from safetensors import safe_open
    from safetensors.torch import load_model

    from brain3d.fsutil import atomic_dir, atomic_write_json
    from brain3d.model.backbones import quiet_transformers
    from brain3d.twin.warmup import DONE

    path = asset_path(part, spec, folder)
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as fh:
        summary = json.loads(fh.metadata()["summary"])
    model, extra = _load(model_dir, part)
    with quiet_transformers():
        load_model(model, str(path), strict=True)
        with atomic_dir(model_dir) as tmp:
            model.save_pretrained(tmp)
            for name in extra:
                (tmp / name).write_bytes((model_dir / name).read_bytes())
            atomic_write_json(tmp / DONE, {**summary, "loaded_from_asset": path.name})
    return summary


def save_asset(model_dir: Path, part: str, spec: dict[str, Any], summary: dict, folder: Path = ASSET_DIR) -> Path:
    """Store a warmed-up model folder's weights as the asset of `spec`."""
    from safetensors.torch import save_model

    folder.mkdir(parents=True, exist_ok=True)
    path = asset_path(part, spec, folder)
    model, _ = _load(model_dir, part)
    tmp = path.with_suffix(".tmp")
    save_model(model, str(tmp), metadata={"summary": json.dumps(summary), "spec": json.dumps(spec, default=list)})
    tmp.replace(path)
    return path


def _load(model_dir: Path, part: str):
    """The folder's model (class by part) and the non-weight files to carry over when it is rewritten."""
    import torch
    from transformers import Gemma3ForConditionalGeneration, SiglipModel

    from brain3d.model.backbones import quiet_transformers

    cls = SiglipModel if part == "vision" else Gemma3ForConditionalGeneration
    with quiet_transformers():
        model = cls.from_pretrained(model_dir, dtype=torch.float32)
    weights = {"model.safetensors", "config.json", "brain3d_pretraining.json", "brain3d_tissue_head.safetensors"}
    extra = [p.name for p in model_dir.iterdir() if p.is_file() and p.name not in weights]
    return model, extra
