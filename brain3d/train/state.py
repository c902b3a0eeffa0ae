"""Resume state of an interrupted phase, without pickle: tensors in safetensors, everything else in JSON.

RUN_DIR/state/ (replaced whole, atomically, after every epoch):
    state.json             phase, epochs done, optimizer steps, early-stopping bookkeeping
    weights.safetensors    the current trainable tensors (LoRA included)
    best.safetensors       the trainable tensors of the best validation epoch so far
    optimizer.safetensors  AdamW moments, flattened as "state.<param index>.<name>"
    optimizer.json         the optimizer's param_groups (lrs, betas, ...; parameter indices)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from brain3d.errors import CheckpointError
from brain3d.fsutil import atomic_dir, atomic_write_json

STATE_VERSION = 1


def flatten_optimizer_state(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch optimizer.state_dict() -> ({"state.<idx>.<name>": tensor}, JSON-able rest).

    Non-tensor per-parameter entries (rare) go to the JSON part."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state_dict["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `flatten_optimizer_state` (betas back to tuples)."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_state(
    state_dir: Path,
    info: dict[str, Any],
    weights: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
) -> None:
    """Write the resume state folder atomically (a crash mid-write leaves the previous state intact)."""
    opt_tensors, opt_meta = flatten_optimizer_state(optimizer.state_dict())
    with atomic_dir(state_dir) as tmp:
        save_file(_cpu(weights), str(tmp / "weights.safetensors"))
        if best is not None:
            save_file(_cpu(best), str(tmp / "best.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        atomic_write_json(tmp / "optimizer.json", opt_meta)
        atomic_write_json(tmp / "state.json", {"version": STATE_VERSION, **info})


def read_state_info(state_dir: Path) -> dict[str, Any] | None:
    """state.json of a resume state, or None when there is none."""
    f = Path(state_dir) / "state.json"
    if not f.is_file():
        return None
    try:
        info = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"resume state is not valid JSON ({exc.msg}); delete the state folder", f) from None
    if info.get("version") != STATE_VERSION:
        raise CheckpointError(f"resume state version {info.get('version')} is not {STATE_VERSION}", f)
    return info


def load_state(state_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict]:
    """(weights, best weights or None, optimizer state_dict) of a resume state folder."""
    state_dir = Path(state_dir)
    try:
        weights = load_file(str(state_dir / "weights.safetensors"))
        best_file = state_dir / "best.safetensors"
        best = load_file(str(best_file)) if best_file.is_file() else None
        opt = unflatten_optimizer_state(load_file(str(state_dir / "optimizer.safetensors")),
                                        json.loads((state_dir / "optimizer.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"resume state cannot be read ({type(exc).__name__}: {exc})", state_dir) from None
    return weights, best, opt


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
