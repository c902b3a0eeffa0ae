"""The oracle grounding table: phases 2A/2B trained on planted features, per plant and per configuration.

Rows are configurations of the *language half* (profile, compressor, how the tiny LM was warmed up), columns
the scores of `brain3d.eval.grounding` on held-out planted subjects. A configuration that fails a plant here
cannot write that attribute from any vision half, so this table tells a language-half failure from a
vision-half one. Usage:

    python bench/grounding.py --out bench/grounding.json [--plants hemisphere,regional] [--configs shipped]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, set_threads  # noqa: E402

from brain3d.fsutil import atomic_write_json  # noqa: E402

# name -> (profile, overrides, LM warm-up: 'text' = report text only, 'prefix' = + findings prefix)
PLAIN = ["phases.2a.keyword_weight=1", "phases.2b.keyword_weight=1"]  # the paper's plain report loss
CONFIGS = {
    "paper-style (seq_pool; plain loss; text-only LM)": ("tiny", ["model.compressor=seq_pool", *PLAIN], "text"),
    "landed before (grid_pool; plain loss; text-only LM)": ("tiny", ["model.compressor=grid_pool", *PLAIN], "text"),
    "grid_pool + prefix-warmed LM": ("tiny", ["model.compressor=grid_pool", *PLAIN], "prefix"),
    "mirror_pool + text-only LM": ("tiny", ["model.compressor=mirror_pool", *PLAIN], "text"),
    "mirror_pool + prefix-warmed LM + plain loss": ("tiny", ["model.compressor=mirror_pool", *PLAIN], "prefix"),
    "mirror_attn + prefix-warmed LM + keyword weight 3": ("tiny", ["model.compressor=mirror_attn"], "prefix"),
    "shipped (mirror_pool; prefix-warmed LM; keyword weight 3)": ("tiny", [], "prefix"),
}
PLANTS = ("presence", "global", "hemisphere", "regional")
COLUMNS = ("side_acc_one_sided", "side_acc_bilateral", "healthy_specificity", "mirror_flip_rate",
           "teacher_forced_side", "lobe_f1", "findings_acc")


def twin(folder: Path, warmup: str, quick: bool) -> dict:
    """The tiny twin with its LM warmed up on report text only, or with the findings prefix as well."""
    import dataclasses

    from brain3d.twin.pretrained import TwinRecipe, make_pretrained_twin

    recipe = TwinRecipe.quick() if quick else TwinRecipe()
    # planted features replace the vision tower: only the LM's warm-up matters here
    recipe = dataclasses.replace(recipe, vision=None, lm_prefix=recipe.lm_prefix if warmup == "prefix" else None)
    return make_pretrained_twin(folder, seed=42, recipe=recipe)


def run(out: Path, plants: list[str], configs: list[str], quick: bool = False) -> dict:
    from brain3d.eval.grounding import GroundingConfig, run_grounding
    from brain3d.train.config import load_config

    out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    have = {(r["config"], r["plant"]) for r in done["rows"]}
    size = dict(n_train=40, n_val=8, n_test=8, epochs_2a=1, epochs_2b=1) if quick else {}
    for name in configs:
        profile, overrides, warmup = CONFIGS[name]
        models = twin(out.parent / f"grounding-twin-{warmup}{'-quick' if quick else ''}", warmup, quick)
        for plant in plants:
            if (name, plant) in have:
                continue
            cfg = load_config(profile, overrides=overrides + (["model.image_size=[16,32,32]"] if quick else []))
            t0 = time.time()
            res = run_grounding(cfg, models["vision"], models["language"], GroundingConfig(plant=plant, **size))
            done["rows"].append({"config": name, "plant": plant, "overrides": overrides, "lm_warmup": warmup,
                                 "steps": res.steps, "seconds": round(time.time() - t0, 1), **res.scores})
            done["machine"] = machine()
            atomic_write_json(out, done)  # resumable: one row at a time
            print(f"{name:45s} {plant:10s} " + " ".join(f"{c}={_fmt(res.scores.get(c))}" for c in COLUMNS), flush=True)
    return done


def markdown(result: dict) -> str:
    """The table for bench/results.md."""
    head = "| configuration | plant | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for r in result["rows"]:
        lines.append(f"| {r['config']} | {r['plant']} | " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/grounding/grounding.json"))
    ap.add_argument("--plants", default=",".join(PLANTS))
    ap.add_argument("--configs", default="all", help="comma-separated names, 'all' or 'shipped'")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, one epoch per phase")
    args = ap.parse_args(argv)
    set_threads(1)
    names = list(CONFIGS) if args.configs == "all" else (
        [n for n in CONFIGS if n.startswith("shipped")] if args.configs == "shipped" else args.configs.split(","))
    result = run(args.out, args.plants.split(","), names, args.quick)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
