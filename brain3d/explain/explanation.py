"""One scan's explanation as data: what `explain_scan` computes and `outputs` writes (so neither imports the other)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Explanation:
    """One scan's explanation. weights (S,) belong to supervoxels 1..S of `labels` (D, H, W, model grid, 0 =
    background); map_model (D, H, W) is the map on that grid, `model_affine` its index → world RAS mm.
    `files` holds the paths written (nifti, png, json) when an output folder was given."""

    id: str
    target: str
    input: list[str]
    report: str = ""
    error: str | None = None
    words: tuple[str, ...] = ()
    description: str = ""
    score: float = math.nan
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = math.nan
    r2: float = math.nan
    local_pred: float = math.nan
    supervoxels: list[dict] = field(default_factory=list)
    top: list[dict] = field(default_factory=list)
    labels: np.ndarray | None = None
    map_model: np.ndarray | None = None
    model_affine: np.ndarray | None = None
    orientation: str | None = None
    pointing: dict | None = None
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The `<id>_lime.json` record."""
        return {
            "id": self.id, "input": self.input, "target": self.target, "words": list(self.words),
            "score_description": self.description, "report": self.report, "error": self.error,
            "score": _num(self.score), "fit": {"intercept": _num(self.intercept), "r2": _num(self.r2),
                                               "local_prediction": _num(self.local_pred)},
            "top_supporting": self.top, "supervoxels": self.supervoxels, "pointing": self.pointing,
            "stored_orientation": self.orientation, "files": {k: Path(v).name for k, v in self.files.items()},
            "settings": self.settings, "seconds": round(self.seconds, 3),
        }

    def row(self) -> dict:
        """The `explanations.jsonl` line: the record without the per-supervoxel table."""
        d = self.to_dict()
        d.pop("supervoxels")
        d["n_supervoxels"] = len(self.supervoxels)
        return d


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
