"""A measure of grounding from the explanations: does the attribution point at the lesion?

Per scan with a lesion mask (phantoms, BraTS seg; every nonzero label is lesion):
  energy_in_lesion  share of the positive attribution (Σ max(map, 0) over brain voxels) inside the lesion;
                    chance = the lesion's share of the brain (what a uniform map would give)
  side_hit          1 when the top supporting supervoxel lies on the lesion's true side (one-sided lesions only);
                    chance 0.5
  top_in_lesion     1 when the top supporting supervoxel touches the lesion ("pointing game");
                    chance = the share of supervoxels that touch it
Means over scans with percentile-bootstrap 95% CIs (`eval.stats`), next to the chance level's mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brain3d.eval.stats import bootstrap_ci
from brain3d.explain.maps import labels_on_grid

MEASURES = ("energy_in_lesion", "side_hit", "top_in_lesion")


def lesion_on_model_grid(mask_path: str | Path, model_affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(D, H, W) bool: the lesion mask file (any grid, any stored orientation) on the model grid via world mm."""
    from brain3d.io import read_volume

    mask = read_volume(mask_path)
    data = mask.data if mask.data.ndim == 3 else mask.data[0]
    return labels_on_grid((data > 0).astype(np.int32), mask.affine, model_affine, shape) > 0


def pointing_scores(labels: np.ndarray, weights: np.ndarray, sides: list[str], lesion: np.ndarray,
                    true_side: str | None) -> dict:
    """The three measures of one scan and their chance levels (None where a measure does not apply: no lesion
    on the grid, no positive weight, or a lesion that is not one-sided for `side_hit`)."""
    brain = labels > 0
    lesion = lesion & brain
    positive = np.maximum(np.concatenate([[0.0], weights]), 0.0)[labels]  # (D, H, W)
    total = float(positive.sum())
    touched = np.unique(labels[lesion])
    touched = set(touched[touched > 0].tolist())
    top = int(np.argmax(weights)) + 1 if np.max(weights) > 0 else None
    pointed = top is not None and bool(lesion.any())
    one_sided = top is not None and true_side in ("left", "right")
    return {
        "energy_in_lesion": float(positive[lesion].sum()) / total if pointed else None,
        "energy_in_lesion_chance": float(lesion.sum()) / float(brain.sum()) if pointed else None,
        "side_hit": float(sides[top - 1] == true_side) if one_sided else None,
        "side_hit_chance": 0.5 if one_sided else None,
        "top_in_lesion": float(top in touched) if pointed else None,
        "top_in_lesion_chance": len(touched) / len(weights) if pointed else None,
        "lesion_voxels": int(lesion.sum()),
        "true_side": true_side,
    }


def summarize(rows: list[dict], n_boot: int = 1000, seed: int = 42) -> dict:
    """Mean [95% CI] of each measure over the scans where it applies, the mean chance level, and the mean
    [95% CI] of (measure − chance) per scan: above chance when its lower bound is above 0."""
    out = {}
    for m in MEASURES:
        kept = [r for r in rows if r.get(m) is not None]
        iv = bootstrap_ci([r[m] for r in kept], n_boot=n_boot, seed=seed)
        lift = bootstrap_ci([r[m] - r[f"{m}_chance"] for r in kept], n_boot=n_boot, seed=seed)
        out[m] = {**iv.to_dict(), "chance": float(np.mean([r[f"{m}_chance"] for r in kept])) if kept else None,
                  "over_chance": {k: v for k, v in lift.to_dict().items() if k != "n"}}
    out["n_scans"] = len(rows)
    return out


def verdict(entry: dict) -> str:
    """'above chance', 'below chance' or 'not distinguishable from chance' from the CI of (measure − chance)."""
    lift = entry["over_chance"]
    return "above chance" if lift["lo"] > 0 else ("below chance" if lift["hi"] < 0 else
                                                   "not distinguishable from chance")


def write_game(rows: list[dict], out: Path, target: str, split: str | None = None) -> dict | None:
    """The pointing game over the `explanations.jsonl` rows that carry one, written to OUT/pointing.json; None
    when no scan had a lesion mask."""
    from brain3d.fsutil import atomic_write_json

    scored = [r["pointing"] for r in rows if r.get("pointing")]
    if not scored:
        return None
    game = summarize(scored)
    atomic_write_json(Path(out) / "pointing.json", {"target": target, "split": split, **game})
    return game


def format_summary(summary: dict, target: str) -> str:
    """One line per measure, for the terminal and the demo."""
    names = {"energy_in_lesion": "positive attribution inside the lesion",
             "side_hit": "top supervoxel on the lesion's side", "top_in_lesion": "top supervoxel touches the lesion"}
    lines = [f"pointing game (target {target}, {summary['n_scans']} scans with a lesion mask):"]
    for m in MEASURES:
        e = summary[m]
        if not e["n"]:
            lines.append(f"  {names[m]}: n/a")
            continue
        lift = e["over_chance"]
        lines.append(f"  {names[m]}: {e['mean']:.3f} [95% CI {e['lo']:.3f}, {e['hi']:.3f}] (n={e['n']}, "
                     f"chance {e['chance']:.3f}; difference {lift['mean']:+.3f} [{lift['lo']:+.3f}, "
                     f"{lift['hi']:+.3f}]: {verdict(e)})")
    return "\n".join(lines)
