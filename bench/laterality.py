"""The laterality study: which compressor (and whether flip augmentation) lets the model tell left from right.

Same synthetic cohort, same tiny twin, same training budget as `brain3d demo`; only two settings change:
the compressor (`seq_pool` = the reference design, `grid_pool`, `grid_attn`, `mirror_pool`, `mirror_attn`, `perceiver`) and left-right flip
augmentation (on/off). Each configuration is trained (phases 1 -> 2A -> 2B) and evaluated on the test split
with the mirror test. Table: laterality F1 against the true side, mirror-test flip rate, anatomy and
pathology F1 (extended scorer), healthy specificity: mean [95% CI], plus the paired difference in
laterality F1 against `seq_pool` with the same flip setting.

`--seeds 1,2,3` trains every configuration once per training seed (same cohort, same twin) and adds a table of the
mean, minimum and maximum over seeds: one training run is one draw, and seed noise is ~.03 on these metrics.
Training runs as the demo's does (`DemoConfig.train_processes` processes, the profile's effective batch).

Resumable: OUT/configs/<name>/ holds one configuration (run/ = training, eval/ = evaluation, result.json =
done); finished ones are skipped, an interrupted one resumes. `--reuse DIR` takes the cohort and the
LM-warmed tiny twin of a finished demo folder (DIR/cohort/manifest.jsonl, DIR/models/{vision,language}).
Writes OUT/laterality.json and OUT/laterality.md; `bench/run.py --laterality-json OUT/laterality.json`
puts the table into bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import set_threads  # noqa: E402

from brain3d.errors import Brain3DError  # noqa: E402
from brain3d.fsutil import atomic_write_json, atomic_write_text  # noqa: E402

COMPRESSORS = ("seq_pool", "grid_pool", "grid_attn", "mirror_pool", "mirror_attn", "perceiver")
REFERENCE = "seq_pool"
FLIPS = (True, False)
# (key, label) of the study's table, in order; mirror_flip_rate comes from the mirror test
COLUMNS = (
    ("lat_f1_truth", "Lat-F1 truth"), ("mirror_flip_rate", "Mirror flip rate"), ("anat_f1_ext", "Anat-F1 ext"),
    ("path_f1_ext", "Path-F1 ext"), ("healthy_specificity", "Healthy spec."), ("side_acc_truth", "Side acc"),
)
DEFAULT_OUT = Path("demo_out") / "laterality"


@dataclass(frozen=True)
class Configuration:
    compressor: str
    flip: bool
    seed: int | None = None  # training seed; None = the profile's

    @property
    def family(self) -> str:
        return f"{self.compressor}-flip-{'on' if self.flip else 'off'}"

    @property
    def name(self) -> str:
        return self.family + (f"-seed{self.seed}" if self.seed is not None else "")

    @property
    def overrides(self) -> list[str]:
        seed = [f"seed={self.seed}"] if self.seed is not None else []
        return [f"model.compressor={self.compressor}", f"data.flip={'true' if self.flip else 'false'}", *seed]


def configurations(compressors: Sequence[str] = COMPRESSORS, flips: Sequence[bool] = FLIPS,
                   seeds: Sequence[int | None] = (None,)) -> list[Configuration]:
    """Every (compressor, flip, seed), the reference compressor first."""
    unknown = [c for c in compressors if c not in COMPRESSORS]
    if unknown or not compressors:
        raise Brain3DError(f"compressor(s) {', '.join(unknown) or '(none)'} not among {', '.join(COMPRESSORS)}")
    if not flips:
        raise Brain3DError("choose at least one flip setting (on, off)")
    ordered = sorted(dict.fromkeys(compressors), key=COMPRESSORS.index)
    return [Configuration(c, f, s) for c in ordered for f in dict.fromkeys(flips) for s in dict.fromkeys(seeds)]


def parse_flips(text: str) -> list[bool]:
    values = {"on": True, "true": True, "off": False, "false": False}
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in values]
    if bad:
        raise Brain3DError(f"--flip takes on/off (comma-separated), not {', '.join(bad)}")
    return [values[t] for t in items]


# ----------------------------------------------------------------------------------------------- base data
def study_settings(demo, quick: bool, reuse: Path | None) -> dict:
    """What every configuration shares; a resumed study must match it."""
    settings = {"quick": quick, "reuse": str(reuse.resolve()) if reuse else None, "demo_config": asdict(demo)}
    return json.loads(json.dumps(settings))  # as it reads back from study.json (tuples become lists)


def check_settings(out: Path, settings: dict) -> None:
    path = out / "study.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise Brain3DError(f"holds a laterality study with other settings ({', '.join(changed)}); "
                               "use another --out", out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, settings)


def base_data(out: Path, demo, reuse: Path | None, progress: bool, log: Callable[[str], None]) -> tuple[Path, dict[str, Path]]:
    """(manifest, {"vision", "language"}): a finished demo's, or made here exactly as the demo makes them."""
    root = reuse if reuse is not None else out
    manifest = root / "cohort" / "manifest.jsonl"
    models = {"vision": root / "models" / "vision", "language": root / "models" / "language"}
    warmed = [models[k] / "brain3d_pretraining.json" for k in ("language", "vision")]
    if reuse is not None:
        missing = [str(p) for p in (manifest, *warmed) if not p.is_file()]
        if missing:
            raise Brain3DError(f"is not a finished demo folder (missing {', '.join(missing)})", reuse)
        return manifest, models
    if not manifest.is_file():
        from brain3d.synth.cohort import make_cohort

        log("[laterality] synthetic cohort …")
        make_cohort(out / "cohort", demo.n_pathological, demo.n_healthy, demo.seed, ("flair",), demo.workers,
                    progress, demo.voxel_mm)
    if not all(p.is_file() for p in warmed):
        from brain3d.train.config import load_config
        from brain3d.twin.pretrained import make_pretrained_twin

        log("[laterality] tiny twin + warm-ups …")
        model = load_config("tiny", overrides=list(demo.train_overrides)).brain3d_config("tiny", "tiny")
        make_pretrained_twin(out / "models", demo.seed, model.image_size, model.kernel_depth, model.depth_stride,
                             demo.twin, progress)
    return manifest, models


# ----------------------------------------------------------------------------------------------- one configuration
def run_configuration(conf: Configuration, folder: Path, manifest: Path, models: dict[str, Path], demo,
                      progress: bool) -> dict:
    """Train and evaluate one configuration (resuming whatever is there) and return its result.json."""
    from brain3d.eval.evaluate import EvaluateOptions, evaluate_checkpoint
    from brain3d.eval.nlg import NLGOptions
    from brain3d.eval.scoring import ScoreOptions
    from brain3d.train.config import load_config
    from brain3d.train.run import train

    done = folder / "result.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    run_dir = folder / "run"
    overrides = list(demo.train_overrides) + conf.overrides  # ours last: they win
    cfg = load_config("tiny", overrides=overrides)
    if demo.train_processes > 1:  # as the demo trains: several processes, the profile's effective batch
        from brain3d.demo.pipeline import per_process_batches
        from brain3d.train.launch import run_processes, train_argv

        argv = train_argv("tiny", manifest, run_dir, resume=run_dir.exists(), vision_model=models["vision"],
                          language_model=models["language"],
                          overrides=overrides + per_process_batches(cfg, demo.train_processes), quiet=not progress)
        run_processes(demo.train_processes, argv, threads=cfg.threads or 1)
    else:
        train(cfg, manifest, run_dir, resume=run_dir.exists(), progress=progress, vision_model=models["vision"],
              language_model=models["language"])
    t_train = time.perf_counter() - t0
    opts = EvaluateOptions(split="test", batch_size=demo.eval_batch_size, max_new_tokens=demo.max_new_tokens,
                           mirror=True, device="cpu", progress=progress,
                           score=ScoreOptions(n_boot=demo.n_boot, nlg=NLGOptions(meteor=False, bertscore=False)))
    metrics = evaluate_checkpoint(run_dir / "phase2b", manifest, folder / "eval", opts, system=conf.name)
    result = {"name": conf.name, "family": conf.family, "seed": conf.seed, "compressor": conf.compressor,
              "flip": conf.flip, "overrides": conf.overrides, "findings": metrics.get("findings"),
              "metrics": table_entries(folder, metrics), "mirror": metrics["diagnostics"].get("mirror"),
              "n_test": metrics["n"], "train_seconds": round(t_train, 1),
              "eval_seconds": round(time.perf_counter() - t0 - t_train, 1)}
    atomic_write_json(done, result)
    return result


def table_entries(folder: Path, metrics: dict) -> dict[str, dict]:
    """{column key: metric entry (mean, lo, hi, n)} for the study's table; the mirror flip rate's CI is
    bootstrapped over lateralised subjects exactly as the demo's headline does."""
    from brain3d.demo.pipeline import headline

    m = metrics["metrics"]
    entries = {k: m[k] for k, _ in COLUMNS if k in m}
    flip = headline(folder)["headline"]["mirror_flip_rate"]
    entries["mirror_flip_rate"] = {"available": flip["n"] > 0, **flip}
    return entries


def paired_vs_reference(out: Path, results: dict[str, dict], metric: str = "lat_f1_truth",
                        n_boot: int = 1000) -> dict[str, dict]:
    """Per configuration: mean difference in `metric` against seq_pool with the same flip setting, paired
    over test subjects, with its bootstrap CI and p-value."""
    from brain3d.eval.scoring import read_per_sample
    from brain3d.eval.stats import paired_bootstrap

    out_rows: dict[str, dict] = {}
    for name, r in results.items():
        ref = Configuration(REFERENCE, r["flip"], r.get("seed")).name
        if r["compressor"] == REFERENCE or ref not in results:
            continue
        a, b = read_per_sample(out / "configs" / name / "eval"), read_per_sample(out / "configs" / ref / "eval")
        ids = sorted(set(a) & set(b))
        d = paired_bootstrap([a[i][metric] for i in ids], [b[i][metric] for i in ids], n_boot=n_boot)
        out_rows[name] = {"versus": ref, "metric": metric, **asdict(d)}
    return out_rows


# ----------------------------------------------------------------------------------------------- the study
def run(out: str | Path = DEFAULT_OUT, compressors: Sequence[str] = COMPRESSORS, flips: Sequence[bool] = FLIPS,
        quick: bool = False, reuse: str | Path | None = None, threads: int = 1, progress: bool = True,
        log: Callable[[str], None] = print, seeds: Sequence[int | None] = (None,)) -> dict:
    """Run (or resume) the selected configurations; write and return OUT/laterality.json."""
    from brain3d.demo.pipeline import DemoConfig

    set_threads(threads)
    out, reuse = Path(out), (Path(reuse) if reuse else None)
    demo = DemoConfig.quick() if quick else DemoConfig()
    if quick:  # smaller still: the quick study checks the machinery, six times over
        demo = replace(demo, max_new_tokens=32, n_boot=200)
    confs = configurations(compressors, flips, seeds)
    check_settings(out, study_settings(demo, quick, reuse))
    manifest, models = base_data(out, demo, reuse, progress, log)
    results: dict[str, dict] = {}
    for i, conf in enumerate(confs, 1):
        folder = out / "configs" / conf.name
        state = "done, reused" if (folder / "result.json").is_file() else "training + evaluation"
        log(f"[laterality] {i}/{len(confs)} {conf.name}: {state} …")
        results[conf.name] = run_configuration(conf, folder, manifest, models, demo, progress)
        log(f"[laterality] {conf.name}: {summary_line(results[conf.name])}")
    study = {
        "settings": study_settings(demo, quick, reuse), "manifest": str(manifest), "reference": REFERENCE,
        "configurations": results, "paired_lat_f1_truth": paired_vs_reference(out, results, n_boot=demo.n_boot),
        "best_lat_f1_truth": best(results), "over_seeds": over_seeds(results),
    }
    atomic_write_json(out / "laterality.json", study)
    atomic_write_text(out / "laterality.md", markdown(study))
    log(f"[laterality] wrote {out / 'laterality.md'}")
    return study


SEED_COLUMNS = ("lat_f1_truth", "mirror_flip_rate", "healthy_specificity", "side_acc_truth")
SEED_FINDINGS = ("edema", "necrosis", "compression")


def over_seeds(results: dict[str, dict]) -> dict[str, dict]:
    """Per configuration family: mean, min and max over its training seeds of the headline metrics and of the
    findings' balanced accuracy (families trained with one seed are left out)."""
    families: dict[str, list[dict]] = {}
    for r in results.values():
        families.setdefault(r.get("family", r["name"]), []).append(r)
    out: dict[str, dict] = {}
    for fam, rs in families.items():
        if len(rs) < 2:
            continue
        row: dict[str, dict] = {}
        for key in SEED_COLUMNS:
            vals = [r["metrics"].get(key, {}).get("mean") for r in rs]
            vals = [v for v in vals if v is not None]
            if vals:
                row[key] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals), "seeds": len(vals)}
        for f in SEED_FINDINGS:
            vals = [((r.get("findings") or {}).get(f) or {}).get("balanced_accuracy", {}).get("mean") for r in rs]
            vals = [v for v in vals if v is not None and v == v]
            if vals:
                row[f"{f}_balanced"] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals),
                                        "seeds": len(vals)}
        out[fam] = row
    return out


def best(results: dict[str, dict], metric: str = "lat_f1_truth") -> list[str]:
    """The configuration(s) with the highest mean `metric` (several when tied)."""
    means = {n: r["metrics"].get(metric, {}).get("mean") for n, r in results.items()}
    means = {n: m for n, m in means.items() if m is not None}
    top = max(means.values(), default=None)
    return [n for n, m in means.items() if top is not None and abs(m - top) < 1e-12]


def default_out(quick: bool) -> Path:
    return Path(f"{DEFAULT_OUT}-quick") if quick else DEFAULT_OUT


def summary_line(result: dict) -> str:
    from brain3d.eval.tables import cell

    return ", ".join(f"{label} {cell(result['metrics'].get(k))}" for k, label in COLUMNS[:5])


def markdown(study: dict) -> str:
    """The study's table (mean [95% CI]) and the paired laterality differences against seq_pool."""
    from brain3d.eval.tables import fmt, markdown_table

    rows = {name: r["metrics"] for name, r in study["configurations"].items()}
    any_r = next(iter(study["configurations"].values()))
    s = study["settings"]
    lines = [
        "Same cohort, tiny twin and training budget as `brain3d demo`" + (" --quick" if s["quick"] else "")
        + f"; test split, n = {any_r['n_test']}; greedy decoding; mean [95% CI] (percentile bootstrap over subjects). "
        "Lat-F1 truth: generated side vs the true side. Mirror flip rate: share of lateralised reports whose "
        "mirrored scan gets the opposite side.", "",
        markdown_table(rows, COLUMNS, first="configuration"),
    ]
    paired = study.get("paired_lat_f1_truth") or {}
    if paired:
        lines += ["", "| configuration | vs | Δ Lat-F1 truth [95% CI] | p |", "|---|---|---|---|"]
        lines += [f"| {n} | {p['versus']} | {fmt(p['diff'])} [{fmt(p['lo'])}, {fmt(p['hi'])}] | {p['p']:.3f} |"
                  for n, p in paired.items()]
    seeds = study.get("over_seeds") or {}
    if seeds:
        keys = [*SEED_COLUMNS, *(f"{f}_balanced" for f in SEED_FINDINGS)]
        lines += ["", "Over training seeds (mean, min–max):", "",
                  "| configuration | seeds | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for fam, row in seeds.items():
            n = max((v["seeds"] for v in row.values()), default=0)
            cells = [f"{fmt(row[k]['mean'])} ({fmt(row[k]['min'])}–{fmt(row[k]['max'])})" if k in row else "—"
                     for k in keys]
            lines.append(f"| {fam} | {n} | " + " | ".join(cells) + " |")
    top = study["best_lat_f1_truth"]
    lines += ["", f"Highest mean laterality F1 against truth: **{', '.join(top) or 'none'}**"
              + (" (tied)." if len(top) > 1 else ".") + " Overlapping CIs mean the difference is not established."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help=f"study folder (default {DEFAULT_OUT}, "
                    f"{DEFAULT_OUT}-quick with --quick); resumes if it exists")
    ap.add_argument("--compressors", default=",".join(COMPRESSORS), help="comma-separated subset of "
                    + ", ".join(COMPRESSORS))
    ap.add_argument("--flip", default="on,off", help="flip augmentation settings: on, off or on,off")
    ap.add_argument("--quick", action="store_true", help="tiny cohort and budget (the demo's --quick sizes)")
    ap.add_argument("--reuse", type=Path, default=None, help="finished demo folder: reuse its cohort and models")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", default="", help="comma-separated training seeds (e.g. 1,2,3); default: the profile's")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    a = ap.parse_args(argv)
    out = a.out or default_out(a.quick)
    try:
        seeds = [int(x) for x in a.seeds.split(",") if x.strip()] or [None]
        study = run(out, [c.strip() for c in a.compressors.split(",") if c.strip()], parse_flips(a.flip),
                    a.quick, a.reuse, a.threads, a.progress, log=lambda s: print(s, file=sys.stderr), seeds=seeds)
    except Brain3DError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(markdown(study))
    return study


if __name__ == "__main__":
    main()
