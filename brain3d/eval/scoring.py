"""Score a predictions file: per-sample clinical + language metrics, bootstrap CIs, subgroups, diagnostics.

A prediction row is ``{"id", "reference", "generated"}`` with optional ``"healthy"`` (bool), ``"truth"``
(``{side, lobes, findings}`` as in the manifest) and ``"generated_mirror"`` (the report for the left-right
mirrored volume, for the mirror test). ``"sequences"`` (the checkpoint's input channels) lets the ``unassessable``
section count reports asserting findings those cannot show (`eval.unassessable`). `score_predictions` writes:

- ``metrics.json``  every metric as {mean, lo, hi, n} (or unavailable with the reason), per subgroup too;
- ``metrics.md``    the paper's Table I row (mean [95% CI]), then extended / truth / screening columns,
                    subgroups and diagnostics;
- ``per_sample.csv`` one row per subject, every per-sample score (empty = not applicable), for `compare`.

Subgroups: healthy / pathological from the row's ``healthy`` flag (if absent: from the truth, else from
whether the reference asserts any pathology); left / right / bilateral / undefined for pathological subjects
from the truth side (if absent: the side the reference asserts). ``group_source`` in metrics.json records
which was used.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import ValidationError

from brain3d import vocabulary
from brain3d.data.manifest import Truth
from brain3d.errors import Brain3DError
from brain3d.eval import clinical, diagnostics, nlg, stats, tables
from brain3d.eval.findings import finding_scores
from brain3d.eval.unassessable import unassessable_lines, unassessable_section
from brain3d.fsutil import atomic_write_json, atomic_write_text, ensure_dir
from brain3d.vocabulary import FINDINGS

GROUPS = ("healthy", "pathological", "left", "right", "bilateral", "undefined")
CLINICAL_COLUMNS = ("lat_f1", "anat_f1", "path_f1", "lat_f1_ext", "anat_f1_ext", "path_f1_ext")
TRUTH_COLUMNS = ("side_acc_truth", "lat_f1_truth", "lobe_f1_truth", "findings_acc_truth")
SCREEN_COLUMNS = ("healthy_specificity", "pathology_sensitivity")
METRIC_COLUMNS = nlg.NLG_METRICS + CLINICAL_COLUMNS + TRUTH_COLUMNS + SCREEN_COLUMNS
PER_SAMPLE_FILE = "per_sample.csv"


class PredictionsError(Brain3DError):
    """A predictions file or row is malformed."""


@dataclass
class ScoreOptions:
    """How to score: language-metric options, bootstrap settings and the system's name for the table."""

    nlg: nlg.NLGOptions = field(default_factory=nlg.NLGOptions)
    n_boot: int = stats.N_BOOT
    seed: int = stats.SEED
    level: float = 0.95
    system: str = "system"


@dataclass
class Prediction:
    id: str
    reference: str
    generated: str
    healthy: bool | None = None
    truth: Truth | None = None
    generated_mirror: str | None = None


def parse_rows(rows: Sequence[dict], source: str | Path | None = None) -> list[Prediction]:
    """Validate prediction rows (id, reference, generated; optional healthy, truth, generated_mirror)."""
    out: list[Prediction] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise PredictionsError(f"row {i} is not a JSON object", source)
        missing = [k for k in ("id", "reference", "generated") if k not in row]
        if missing:
            raise PredictionsError(f"row {i} lacks {', '.join(missing)}", source)
        rid = str(row["id"])
        if rid in seen:
            raise PredictionsError(f"row {i} repeats id {rid!r}", source)
        seen.add(rid)
        try:
            truth = Truth.model_validate(row["truth"]) if row.get("truth") is not None else None
        except ValidationError as exc:
            raise PredictionsError(f"row {i} ({rid}) has an invalid truth: {str(exc).splitlines()[0]}", source) from None
        healthy = row.get("healthy")
        out.append(Prediction(rid, str(row["reference"] or ""), str(row["generated"] or ""),
                              None if healthy is None else bool(healthy), truth, row.get("generated_mirror")))
    if not out:
        raise PredictionsError("no prediction rows to score", source)
    return out


# ---------------------------------------------------------------- per sample
def _is_healthy(p: Prediction) -> tuple[bool, str]:
    if p.healthy is not None:
        return p.healthy, "healthy flag"
    if p.truth is not None:
        return (p.truth.side is None and not p.truth.lobes and not any(p.truth.findings.values())), "truth"
    return (not vocabulary.asserts_pathology(p.reference)), "reference text"


def _group(p: Prediction, healthy: bool) -> tuple[str, str]:
    if healthy:
        return "healthy", ""
    side = p.truth.side if p.truth is not None else vocabulary.side_of(p.reference)
    return (side or "undefined"), ("truth" if p.truth is not None else "reference text")


def _truth_scores(p: Prediction, healthy: bool) -> dict[str, float]:
    """Scores against the true labels; a healthy subject without truth counts as no side, lobes or findings."""
    nan = {k: math.nan for k in TRUTH_COLUMNS}
    truth = p.truth if p.truth is not None else (Truth() if healthy else None)
    if truth is None:
        return nan
    gen_side = vocabulary.side_of(p.generated)
    gen_findings = vocabulary.findings_of(p.generated)
    named = [f for f in FINDINGS if f in truth.findings] if truth.findings else (list(FINDINGS) if healthy else [])
    return {
        "side_acc_truth": float(gen_side == truth.side),
        "lat_f1_truth": clinical.f1(vocabulary.side_set(truth.side), vocabulary.side_set(gen_side)),
        "lobe_f1_truth": clinical.f1(set(truth.lobes) & set(vocabulary.LOBES), set(vocabulary.lobes_of(p.generated))),
        "findings_acc_truth": (float(np.mean([gen_findings[f] == bool(truth.findings.get(f, False)) for f in named]))
                               if named else math.nan),
    }


def clinical_sample(p: Prediction) -> dict[str, Any]:
    """Every clinical per-sample score of one prediction plus its subgroup labels."""
    healthy, healthy_source = _is_healthy(p)
    group, side_source = _group(p, healthy)
    row: dict[str, Any] = {"id": p.id, "healthy": healthy, "group": group,
                           "side_generated": vocabulary.side_of(p.generated) or "",
                           "side_truth": (p.truth.side or "") if p.truth else ""}
    for mode, suffix in (("parity", ""), ("extended", "_ext")):
        f = clinical.sample_f1(p.reference, p.generated, mode)
        row[f"lat_f1{suffix}"], row[f"anat_f1{suffix}"], row[f"path_f1{suffix}"] = (
            f["laterality"], f["anatomy"], f["pathology"])
    row.update(_truth_scores(p, healthy))
    asserted = vocabulary.asserts_pathology(p.generated)
    row["healthy_specificity"] = float(not asserted) if healthy else math.nan
    row["pathology_sensitivity"] = float(asserted) if not healthy else math.nan
    row["_sources"] = (healthy_source, side_source)
    return row


# ---------------------------------------------------------------- aggregate
def _entry(values: np.ndarray, o: ScoreOptions) -> dict:
    iv = stats.bootstrap_ci(values, o.n_boot, o.seed, o.level)
    return {"available": True, **iv.to_dict()}


def _summarise(columns: dict[str, np.ndarray], unavailable: dict[str, dict], mask: np.ndarray,
               o: ScoreOptions) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key in METRIC_COLUMNS:
        if key in unavailable:
            out[key] = unavailable[key]
            continue
        vals = columns[key][mask]
        if np.isnan(vals).all():
            continue  # never applicable here (e.g. no truth labels, no healthy subject)
        out[key] = _entry(vals, o)
    return out


def score_predictions(rows: Sequence[dict], out_dir: str | Path | None, options: ScoreOptions | None = None,
                      source: str | Path | None = None) -> dict:
    """Score prediction rows; write metrics.json, metrics.md and per_sample.csv into `out_dir` (if given)."""
    o = options or ScoreOptions()
    preds = parse_rows(rows, source)
    refs = [p.reference for p in preds]
    gens = [p.generated for p in preds]

    language = nlg.nlg_scores(refs, gens, o.nlg)
    samples = [clinical_sample(p) for p in preds]
    columns: dict[str, np.ndarray] = {k: np.array([s[k] for s in samples], dtype=np.float64)
                                      for k in CLINICAL_COLUMNS + TRUTH_COLUMNS + SCREEN_COLUMNS}
    unavailable: dict[str, dict] = {}
    for key, res in language.items():
        if res.available:
            columns[key] = np.asarray(res.scores, dtype=np.float64)
        else:
            unavailable[key] = {"available": False, "reason": res.reason, "n": 0}
            columns[key] = np.full(len(preds), np.nan)

    n = len(preds)
    groups = np.array([s["group"] for s in samples])
    healthy = np.array([s["healthy"] for s in samples], dtype=bool)
    masks = {"all": np.ones(n, dtype=bool), "healthy": healthy, "pathological": ~healthy}
    masks.update({g: groups == g for g in ("left", "right", "bilateral", "undefined")})
    metrics = _summarise(columns, unavailable, masks["all"], o)
    subgroups = {g: {"n": int(m.sum()), "metrics": _summarise(columns, unavailable, m, o)}
                 for g, m in masks.items() if g != "all" and m.any()}

    result = {
        "system": o.system,
        "n": n,
        "metrics": metrics,
        "subgroups": subgroups,
        "metric_info": {k: r.info for k, r in language.items() if r.info},
        "bertscore_model": language["bertscore"].info.get("model") if language["bertscore"].available else None,
        "diagnostics": {"generated": diagnostics.diversity(gens), "reference": diagnostics.diversity(refs)},
        "bootstrap": {
            "method": "percentile bootstrap of the per-sample mean, resampling subjects",
            "n_boot": o.n_boot, "seed": o.seed, "level": o.level,
            "cider": "per-sample CIDEr-D with document frequencies from the whole scored set held fixed; "
                     "its corpus score equals the per-sample mean",
        },
        "definitions": {
            "lat_f1/anat_f1/path_f1": "reference scorer (parity extraction), generated vs reference text",
            "*_ext": "negation-aware extended extraction, generated vs reference text",
            "*_truth": "generated report vs the subject's true labels (extended extraction)",
            "healthy_specificity": "share of healthy subjects whose report asserts no pathology (extended)",
            "pathology_sensitivity": "share of pathological subjects whose report asserts some pathology",
        },
        "group_source": sorted({f"healthy: {s['_sources'][0]}" for s in samples}
                               | {f"side: {s['_sources'][1]}" for s in samples if s["_sources"][1]}),
        "options": {"nlg": asdict(o.nlg)},
    }
    lesions = [p for p, s in zip(preds, samples) if not s["healthy"] and p.truth is not None and p.truth.findings]
    result["findings"] = finding_scores([p.truth.findings for p in lesions],
                                        [vocabulary.findings_of(p.generated) for p in lesions], FINDINGS,
                                        o.n_boot, o.seed, o.level)
    result["unassessable"] = unassessable_section(rows, o.n_boot, o.seed, o.level, source)
    if any(p.generated_mirror is not None for p in preds):
        pairs = [(vocabulary.side_of(p.generated), vocabulary.side_of(p.generated_mirror))
                 for p in preds if p.generated_mirror is not None]
        result["diagnostics"]["mirror"] = diagnostics.mirror_test([a for a, _ in pairs], [b for _, b in pairs])

    if out_dir is not None:
        write_outputs(result, samples, columns, Path(out_dir))
    return result


# ---------------------------------------------------------------- files
def per_sample_csv(samples: list[dict], columns: dict[str, np.ndarray]) -> str:
    """CSV text: id, group, labels, then every metric column (empty cell = not applicable/unavailable)."""
    buf = io.StringIO()
    head = ["id", "healthy", "group", "side_truth", "side_generated", *METRIC_COLUMNS]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for i, s in enumerate(samples):
        vals = ["" if math.isnan(columns[k][i]) else f"{columns[k][i]:.6g}" for k in METRIC_COLUMNS]
        w.writerow([s["id"], int(s["healthy"]), s["group"], s["side_truth"], s["side_generated"], *vals])
    return buf.getvalue()


def read_per_sample(folder: str | Path) -> dict[str, dict[str, float]]:
    """{id: {metric: value}} from a score/evaluate folder's per_sample.csv (NaN where empty)."""
    path = Path(folder) / PER_SAMPLE_FILE
    if not path.is_file():
        raise PredictionsError(f"no {PER_SAMPLE_FILE} here; score the predictions first (`brain3d score`)", folder)
    out: dict[str, dict[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out[row["id"]] = {k: (float(row[k]) if row.get(k) not in (None, "") else math.nan)
                              for k in METRIC_COLUMNS if k in row}
    return out


def metrics_markdown(result: dict) -> str:
    """The human-readable summary of one scored system."""
    name = result.get("system", "system")
    m = result["metrics"]
    parts = [f"# Evaluation: {name}", "",
             f"{result['n']} subjects; mean [95% CI], percentile bootstrap ({result['bootstrap']['n_boot']} "
             f"resamples, seed {result['bootstrap']['seed']}).", "",
             "## Paper columns (Table I)", "", tables.markdown_table({name: m}, tables.PAPER_COLUMNS)]
    for title, cols in (("Negation-aware clinical F1 (extended)", tables.EXTENDED_COLUMNS),
                        ("Against true labels", tables.TRUTH_COLUMNS),
                        ("Screening", tables.SCREEN_COLUMNS)):
        t = tables.markdown_table({name: m}, cols)
        if t:
            parts += ["", f"## {title}", "", t]
    sub = {f"{g} (n={v['n']})": v["metrics"] for g, v in result["subgroups"].items()}
    if sub:
        parts += ["", "## Subgroups (means)", "",
                  tables.markdown_table(sub, tables.ALL_COLUMNS, with_ci=False, first="group",
                                        only_available=True)]
    d = result["diagnostics"]["generated"]
    r = result["diagnostics"]["reference"]
    parts += ["", "## Diagnostics", "",
              "| | distinct-1 | distinct-2 | distinct-3 | unique outputs | most common output share |",
              "|---|---|---|---|---|---|",
              *(f"| {label} | {tables.fmt(x['distinct_1'])} | {tables.fmt(x['distinct_2'])} | "
                f"{tables.fmt(x['distinct_3'])} | {tables.fmt(x['unique_outputs'])} | {tables.fmt(x['top_output_share'])} |"
                for label, x in (("generated", d), ("reference", r)))]
    mirror = result["diagnostics"].get("mirror")
    if mirror:
        parts += ["", f"Mirror test: flip rate {tables.fmt(mirror['flip_rate'])} over {mirror['n_lateralised']} "
                      f"lateralised reports; same side repeated {tables.fmt(mirror['same_side_rate'])}; "
                      f"bilateral kept {tables.fmt(mirror['bilateral_kept'])} ({mirror['n_bilateral']})."]
    parts += unassessable_lines(result.get("unassessable"))
    notes = tables.unavailable_notes(m)
    if result.get("bertscore_model"):
        notes.append(f"- BERTScore model: {result['bertscore_model']}")
    if notes:
        parts += ["", "## Notes", "", *notes]
    return "\n".join(parts) + "\n"


def write_outputs(result: dict, samples: list[dict], columns: dict[str, np.ndarray], out_dir: Path) -> None:
    ensure_dir(out_dir)
    atomic_write_text(out_dir / PER_SAMPLE_FILE, per_sample_csv(samples, columns))
    atomic_write_text(out_dir / "metrics.md", metrics_markdown(result))
    atomic_write_json(out_dir / "metrics.json", result)
