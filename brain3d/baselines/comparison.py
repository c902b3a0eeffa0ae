"""Brain3D beside the 2D-slice baseline (paper Table I): both scored folders, paired differences, prefill sizes.

Both folders are scored on the same manifest split; the paired bootstrap (`eval.compare.compare_dirs`, as
`brain3d compare`) runs over the subjects both scored. The prefill count is the prompt length the language
model reads before its first report token: Brain3D's K soft tokens plus its prompt ids, against the slice
baseline's N slices x tokens-per-image plus its text.
"""

from __future__ import annotations

import json
from pathlib import Path

from brain3d.errors import Brain3DError
from brain3d.eval import stats
from brain3d.eval.compare import compare_dirs


def brain3d_prefill(checkpoint: str | Path) -> dict[str, int]:
    """{"total", "image"}: prompt length of a Brain3D checkpoint (before + K visual tokens + after), read
    from its config and its language model's tokenizer, no weights loaded."""
    from brain3d.model.backbones import load_tokenizer
    from brain3d.model.brain3d import read_checkpoint
    from brain3d.model.prompt import build_layout

    cfg, _, _ = read_checkpoint(checkpoint)
    layout = build_layout(load_tokenizer(cfg.language_model), cfg.prompt, cfg.prompt_format)
    return {"total": len(layout.before) + cfg.num_tokens + len(layout.after), "image": cfg.num_tokens}


def slice_baseline_comparison(brain3d_dir: str | Path, baseline_dir: str | Path, n_boot: int = stats.N_BOOT,
                              seed: int = stats.SEED) -> dict:
    """Rows of Table I (metrics.json of each folder), paired differences Brain3D − baseline, prefill counts.

    `brain3d_dir` is an `evaluate` folder (evaluate.json names its checkpoint); `baseline_dir` a scored
    `baseline medgemma-2d` folder (baseline.json holds its prompt size)."""
    a, b = Path(brain3d_dir), Path(baseline_dir)
    metrics_a, metrics_b = _read(a / "metrics.json"), _read(b / "metrics.json")
    run, base = _read(a / "evaluate.json"), _read(b / "baseline.json")
    return {
        "brain3d": {"label": metrics_a.get("system") or a.name, "n": metrics_a["n"], "metrics": metrics_a["metrics"],
                    "prefill": brain3d_prefill(run["checkpoint"])},
        "baseline": {"label": metrics_b.get("system") or b.name, "n": metrics_b["n"], "metrics": metrics_b["metrics"],
                     "prefill": {"total": base["prefill_tokens"], "image": base["image_tokens"]},
                     "slices": base["slices"], "slice_size": base["slice_size"],
                     "image_tokens_per_slice": base["image_tokens_per_slice"]},
        "paired": compare_dirs(a, b, n_boot, seed),
    }


def _read(path: Path) -> dict:
    if not path.is_file():
        raise Brain3DError("not found; score both systems before comparing them", path)
    return json.loads(path.read_text(encoding="utf-8"))
