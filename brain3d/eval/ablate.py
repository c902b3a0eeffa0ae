"""The paper's ablation (Table I): evaluate a run's phase1 / phase2a / phase2b checkpoints on the same subjects.

OUT_DIR layout:
    phase1/ phase2a/ phase2b/   one `evaluate` folder per phase (predictions.jsonl, metrics.*, per_sample.csv)
    table.md                    Table I layout: one row per phase, mean [95% CI]; extended/truth/screening
                                columns; paired differences between consecutive phases
    ablation.json               the same numbers, machine-readable

Every phase sees the same subject list and the same preprocessed volumes (read once, kept in memory when
the phases share preprocessing), and each phase's generation resumes on its own if interrupted.
"""

from __future__ import annotations

from pathlib import Path

from brain3d.data.dataset import VolumeSource
from brain3d.errors import Brain3DError, CheckpointError
from brain3d.eval import tables
from brain3d.eval.compare import compare_dirs
from brain3d.eval.evaluate import (EvaluateOptions, evaluate_checkpoint, free_memory, load_model, preprocess_for,
                                   select_records)
from brain3d.fsutil import atomic_write_json, atomic_write_text
from brain3d.ranks import world

PHASES = (("phase1", "Brain3D phase 1"), ("phase2a", "Brain3D phase 2A"), ("phase2b", "Brain3D phase 2B (final)"))


def find_phases(run_dir: str | Path) -> list[tuple[str, str, Path]]:
    """(name, table label, checkpoint) of each phase checkpoint present in a training run folder."""
    run = Path(run_dir)
    found = [(name, label, run / name) for name, label in PHASES if (run / name / "config.json").is_file()]
    if not found:
        raise CheckpointError("holds none of the phase checkpoints phase1/, phase2a/, phase2b/ "
                              "(train with `brain3d train` first)", run)
    return found


def ablate(run_dir: str | Path, manifest: str | Path, out_dir: str | Path, opts: EvaluateOptions | None = None) -> dict:
    """Evaluate every phase checkpoint of `run_dir` on the same subjects and write the Table I layout."""
    if world().distributed:  # its phases share one in-memory volume cache: one process by design
        raise Brain3DError("ablate runs in one process; under torchrun, run `brain3d evaluate` on each phase "
                           "checkpoint (phase1, phase2a, phase2b) instead")
    opts = opts or EvaluateOptions()
    out = Path(out_dir)
    phases = find_phases(run_dir)
    records = select_records(manifest, opts)
    results: dict[str, dict] = {}
    shared: VolumeSource | None = None
    for name, label, ckpt in phases:
        model = load_model(ckpt, opts)
        pre, seqs = preprocess_for(model), list(model.config.sequences)
        if shared is None or shared.preprocess != pre or shared.sequences != seqs:
            shared = VolumeSource(pre, seqs, in_memory=True)
        try:
            results[name] = evaluate_checkpoint(ckpt, manifest, out / name, opts, model=model, volumes=shared,
                                                records=records, system=label)
        finally:
            del model
            free_memory()
    labels = {name: label for name, label, _ in phases}
    diffs = {f"{b}-{a}": compare_dirs(out / b, out / a, opts.score.n_boot, opts.score.seed)
             for (a, _, _), (b, _, _) in zip(phases, phases[1:])}
    missing = [name for name, _ in PHASES if name not in results]
    summary = {"run_dir": str(Path(run_dir).resolve()), "manifest": str(Path(manifest).resolve()),
               "split": opts.split, "profile": opts.profile, "n_subjects": len(records), "missing_phases": missing,
               "phases": {name: {"label": labels[name], "checkpoint": str(ckpt), "metrics": results[name]["metrics"],
                                 "bertscore_model": results[name].get("bertscore_model")}
                          for name, _, ckpt in phases},
               "paired_differences": diffs}
    atomic_write_json(out / "ablation.json", summary)
    atomic_write_text(out / "table.md", ablation_markdown(summary))
    return summary


def ablation_markdown(summary: dict) -> str:
    rows = {p["label"]: p["metrics"] for p in summary["phases"].values()}
    parts = ["# Ablation (paper Table I layout)", "",
             f"{summary['n_subjects']} subjects of split `{summary['split']}`, decoding `{summary['profile']}`; "
             "mean [95% CI], percentile bootstrap over subjects.", "",
             tables.markdown_table(rows, tables.PAPER_COLUMNS)]
    extra = tables.markdown_table(rows, tables.EXTENDED_COLUMNS + tables.TRUTH_COLUMNS + tables.SCREEN_COLUMNS)
    if extra:
        parts += ["", "## Negation-aware, truth-based and screening columns", "", extra]
    for key, d in summary["paired_differences"].items():
        b, a = key.split("-")
        parts += ["", f"## {summary['phases'][b]['label']} − {summary['phases'][a]['label']} (paired bootstrap)", "",
                  "| metric | difference [95% CI] | p |", "|---|---|---|"]
        parts += [f"| {tables.LABELS.get(k, k)} | {tables.fmt(v['diff'])} [{tables.fmt(v['lo'])}, {tables.fmt(v['hi'])}] "
                  f"| {v['p']:.3f} |" for k, v in d["metrics"].items() if k in dict(tables.PAPER_COLUMNS)]
    if summary["missing_phases"]:
        parts += ["", f"Not evaluated (no checkpoint): {', '.join(summary['missing_phases'])}."]
    notes = sorted({n for p in summary["phases"].values() for n in tables.unavailable_notes(p["metrics"])})
    models = sorted({p["bertscore_model"] for p in summary["phases"].values() if p.get("bertscore_model")})
    notes += [f"- BERTScore model: {m}" for m in models]
    if notes:
        parts += ["", "## Notes", "", *notes]
    return "\n".join(parts) + "\n"
