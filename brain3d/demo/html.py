"""A self-contained index.html for the demo: metrics with CIs, ablation, 2D-slice baseline, curves, subjects,
mirror test."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from brain3d.fsutil import atomic_write_text, read_jsonl

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:13px;margin:.6em 0} td,th{border:1px solid #ccc;padding:3px 7px;text-align:center}
th{background:#f3f3f3} td:first-child{text-align:left;white-space:nowrap}
.ok{color:#087f23;font-weight:600} .miss{color:#b00020;font-weight:600}
.subject{display:grid;grid-template-columns:480px 1fr;gap:1em;margin:1em 0;border:1px solid #e3e3e3;padding:.6em}
.subject img{width:480px} .report{font-size:13px;white-space:pre-wrap;background:#fafafa;padding:.4em;margin:.2em 0}
.small{color:#666;font-size:12px} img.curve{max-width:380px;margin-right:.5em}
"""


def write_index(out: Path, summary: dict) -> Path:
    """Render OUT/index.html from the demo's outputs (every figure embedded, no external file needed)."""
    from brain3d.eval.tables import ALL_COLUMNS, PAPER_COLUMNS, cell

    metrics = json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))
    ablation = json.loads((out / "ablation" / "ablation.json").read_text(encoding="utf-8"))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>brain3d demo</title><style>{_CSS}</style>"
             "</head><body>",
             "<h1>brain3d demo</h1>",
             "<p class='small'>Synthetic phantom cohort with known truth and the tiny random twin of MedSigLIP + "
             "MedGemma, trained in three phases on CPU. Numbers are means with 95% percentile-bootstrap CIs "
             f"on the test split ({metrics['n']} subjects). Time per step: "
             + ", ".join(f"{html.escape(k)} {v:.0f} s" for k, v in summary.get("timings_s", {}).items())
             + ".</p>"]

    parts.append("<h2>Headline</h2>" + _headline_table(summary["headline"]))

    parts.append("<h2>Evaluation of the final model (paper Table I columns)</h2>")
    parts.append(_html_table({metrics.get("system", "Brain3D"): metrics["metrics"]}, PAPER_COLUMNS, cell))
    extra = [c for c in ALL_COLUMNS if c not in PAPER_COLUMNS]
    parts.append("<p class='small'>Negation-aware, truth-based and screening columns:</p>")
    parts.append(_html_table({metrics.get("system", "Brain3D"): metrics["metrics"]}, tuple(extra), cell))
    subgroups = {f"{g} (n={v['n']})": v["metrics"] for g, v in metrics.get("subgroups", {}).items()}
    if subgroups:
        parts.append("<p class='small'>Per subgroup:</p>")
        parts.append(_html_table(subgroups, tuple(c for c in ALL_COLUMNS if c[0].endswith(("_ext", "_truth"))
                                                  or c[0] in ("healthy_specificity", "pathology_sensitivity")), cell))
    notes = [f"{k}: {v.get('reason')}" for k, v in metrics["metrics"].items() if not v.get("available", True)]
    if notes:
        parts.append("<p class='small'>Unavailable: " + html.escape("; ".join(notes)) + "</p>")
    if metrics.get("bertscore_model"):
        parts.append(f"<p class='small'>BERTScore model: {html.escape(str(metrics['bertscore_model']))}</p>")

    parts.append(_findings_section(metrics))

    parts.append("<h2>Ablation over training phases (same subjects)</h2>"
                 f"<p class='small'>The first {ablation.get('n_subjects')} subjects of the test split "
                 f"(of {metrics['n']}), every phase on the same ones.</p>")
    rows = {p["label"]: p["metrics"] for p in ablation["phases"].values()}
    parts.append(_html_table(rows, PAPER_COLUMNS, cell))
    parts.append(_html_table(rows, tuple(c for c in ALL_COLUMNS if c[0] in (
        "lat_f1_truth", "lobe_f1_truth", "path_f1_ext", "healthy_specificity")), cell))

    if summary.get("baseline_comparison"):
        parts.append(_baseline_section(summary["baseline_comparison"]))

    mirror = metrics.get("diagnostics", {}).get("mirror")
    if mirror:
        parts.append("<h2>Mirror test</h2><p>Every test scan was also reported mirrored left-right. "
                     f"Flip rate (lateralised reports whose mirror names the opposite side): "
                     f"<b>{_pct(mirror.get('flip_rate'))}</b> of {mirror.get('n_lateralised')}; same side kept "
                     f"{_pct(mirror.get('same_side_rate'))}; bilateral kept {_pct(mirror.get('bilateral_kept'))} "
                     f"of {mirror.get('n_bilateral')}.</p>")
    div = metrics.get("diagnostics", {}).get("generated")
    if div:
        parts.append(f"<p class='small'>Output diversity: distinct-2 {div['distinct_2']:.3f}, unique outputs "
                     f"{_pct(div['unique_outputs'])}, most common output shared by {_pct(div['top_output_share'])}.</p>")

    parts.append(_grounding_section(out))
    parts.append(_explain_section(out, summary))

    curves = sorted((out / "run" / "curves").glob("*.png")) if (out / "run" / "curves").exists() else []
    if curves:
        parts.append("<h2>Training curves</h2>" + "".join(
            f"<img class='curve' alt='{c.stem}' src='data:image/png;base64,{_b64(c)}'>" for c in curves))

    parts.append("<h2>Subjects</h2>" + _subjects(out))
    parts.append("</body></html>")
    return atomic_write_text(out / "index.html", "\n".join(parts))


TRUTH_KEYS = ("lat_f1_truth", "lobe_f1_truth", "path_f1_ext", "healthy_specificity")


def _findings_section(metrics: dict) -> str:
    """Per finding, over the test lesions whose truth names it: prevalence, accuracy and balanced accuracy with CIs.
    Plain accuracy flatters a finding most lesions have; balanced accuracy is 0.5 for any constant answer."""
    rows = metrics.get("findings") or {}
    if not rows:
        return ""

    def ci(e: dict) -> str:
        return "n/a" if e.get("mean") is None or e["mean"] != e["mean"] else f"{e['mean']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]"

    section = metrics.get("unassessable") or {}
    hidden = set(section.get("unassessable") or []) if section.get("available") else set()
    body = "".join(
        f"<tr><td>{html.escape(f)}{' <i>(not assessable on this input)</i>' if f in hidden else ''}</td>"
        f"<td>{d['n']}</td><td>{d['prevalence']:.2f}</td><td>{ci(d['accuracy'])}</td>"
        f"<td>{ci(d['sensitivity'])}</td><td>{ci(d['specificity'])}</td><td><b>{ci(d['balanced_accuracy'])}</b></td></tr>"
        for f, d in rows.items())
    said = ""
    if hidden:
        a = section["asserted"]
        said = (f"<p>Reports that state a finding the input cannot show ({html.escape(', '.join(sorted(hidden)))} on "
                f"{html.escape('; '.join(','.join(x) for x in section['sequences']))}) as present: <b>{ci(a)}</b> of "
                f"{section['n']} (the training reports were written from every sequence; the structured record marks "
                "such a finding not assessable).</p>")
    return ("<h2>Findings read from the image</h2><p class='small'>Each finding the report asserts (negation-aware) "
            "against the lesion's true findings, over the test lesions; 95% bootstrap CIs. A writer that always says "
            "the common answer scores the prevalence in accuracy and 0.50 in balanced accuracy (the mean of "
            "sensitivity and specificity). Enhancement needs a post-contrast scan: a FLAIR-only model cannot see it."
            "</p><table><tr><th>finding</th><th>n</th><th>prevalence</th><th>accuracy</th><th>sensitivity</th>"
            "<th>specificity</th><th>balanced accuracy</th></tr>" + body + "</table>" + said)


def _grounding_section(out: Path) -> str:
    """Per phase: what the vision half hands over (linear probes on the compressed tokens) and whether the model
    reads its image (side named for the real, mirrored and all-zero volume of one validation subject)."""
    files = sorted((out / "run" / "diagnostics").glob("phase*.json")) if (out / "run" / "diagnostics").exists() else []
    if not files:
        return ""
    rows = []
    for f in files:
        d = json.loads(f.read_text(encoding="utf-8"))
        probe, sides = d.get("token_probe") or {}, d.get("sides") or {}

        def acc(name: str) -> str:
            p = probe.get(name) or {}
            return "—" if p.get("accuracy") is None else f"{p['accuracy']:.2f} (base {p['majority']:.2f}, n {p['n']})"

        def balanced(name: str) -> str:
            p = probe.get(name) or {}
            return "—" if p.get("balanced_accuracy") is None else f"{p['balanced_accuracy']:.2f}"

        rows.append(f"<tr><td>{html.escape(f.stem)}</td><td>{acc('side')}</td><td>{acc('presence')}</td>"
                    + "".join(f"<td>{balanced(k)}</td>" for k in ("edema", "necrosis", "enhancement", "compression"))
                    + "".join(f"<td>{html.escape(str(sides.get(v)))}</td>" for v in ("real", "mirrored", "zero", "shuffled"))
                    + "</tr>")
    subject = html.escape(str(json.loads(files[-1].read_text(encoding="utf-8")).get("subject")))
    return ("<h2>Grounding diagnostics</h2><p class='small'>Linear probes (5-fold logistic regression) of the lesion "
            "side (one-sided lesions) and presence on the compressed tokens of the train and validation subjects, "
            f"after each phase; then the side the model names for validation subject {subject}, its left-right "
            "mirror, an all-zero volume and a voxel-shuffled one (a model that reads its image names opposite sides "
            "for the first two and none for the zero volume). Findings: balanced accuracy of the same probes over "
            "the lesion subjects.</p><table><tr><th>phase</th><th>probe: side</th><th>probe: presence</th>"
            "<th>edema</th><th>necrosis</th><th>enhancement</th><th>compression</th>"
            "<th>real</th><th>mirrored</th><th>zero</th><th>shuffled</th></tr>"
            + "".join(rows) + "</table>")


def _baseline_section(c: dict) -> str:
    """Paper Table I layout: Brain3D vs the 2D-slice baseline on the same subjects, paired differences, prefill."""
    from brain3d.eval.tables import LABELS, PAPER_COLUMNS, cell, fmt

    a, b, paired = c["brain3d"], c["baseline"], c["paired"]
    rows = {a["label"]: a["metrics"], b["label"]: b["metrics"]}
    out = ["<h2>Brain3D vs the 2D-slice baseline (paper Table I layout, same subjects)</h2>",
           "<p><b>Both systems here are built on the tiny random twin: these numbers are a wiring check of the "
           "comparison, not a claim about MedGemma.</b> The baseline is the twin's own Gemma-3 multimodal folder "
           "(a random, untrained tiny SigLIP tower; a language model warmed up on report text only), fed "
           f"{b['slices']} equidistant axial FLAIR slices of {b['slice_size']}×{b['slice_size']} in model space "
           "(radiological display), each followed by \"SLICE n\", then Brain3D's instruction, through the "
           "model's processor and chat template, greedy decoding"
           + (f" (the paper feeds 64 slices; this demo profile feeds {b['slices']} to keep its added time short, "
              "and the twin's image processor resizes every slice to its tower's 64×64 anyway)"
              if b["slices"] < 64 else "")
           + ". The paper reports MedGemma 1.5 on 64 slices at Path-F1 .413 against Brain3D's .951.</p>",
           _html_table(rows, PAPER_COLUMNS, cell),
           _html_table(rows, tuple((k, LABELS[k]) for k in TRUTH_KEYS), cell)]
    shown = [k for k, _ in PAPER_COLUMNS] + list(TRUTH_KEYS)
    head = ("<tr><th>metric</th><th>Brain3D</th><th>2D slices</th><th>Brain3D − 2D slices [95% CI]</th>"
            "<th>p</th><th>n</th></tr>")
    body = "".join(f"<tr><td>{html.escape(LABELS.get(k, k))}</td><td>{fmt(d['mean_a'])}</td><td>{fmt(d['mean_b'])}"
                   f"</td><td>{fmt(d['diff'])} [{fmt(d['lo'])}, {fmt(d['hi'])}]</td><td>{d['p']:.3f}</td>"
                   f"<td>{d['n']}</td></tr>" for k, d in paired["metrics"].items() if k in shown)
    out.append(f"<p class='small'>Paired bootstrap over the {paired['n_shared']} subjects both systems scored "
               f"({paired['n_boot']} resamples, as <code>brain3d compare</code>):</p><table>{head}{body}</table>")
    out.append("<table><tr><th>system</th><th>prefill tokens</th><th>of which visual</th></tr>"
               f"<tr><td>{html.escape(a['label'])}</td><td>{a['prefill']['total']}</td><td>{a['prefill']['image']} "
               "soft tokens</td></tr>"
               f"<tr><td>{html.escape(b['label'])}</td><td>{b['prefill']['total']}</td><td>{b['prefill']['image']} "
               f"= {b['slices']} slices × {b['image_tokens_per_slice']} image tokens</td></tr></table>"
               "<p class='small'>Prefill: prompt tokens the language model reads before the first report token "
               "(MedGemma itself spends 256 tokens per image: 64 slices are 16,384 image tokens).</p>")
    return "".join(out)


def _headline_table(h: dict) -> str:
    labels = {"lat_f1_truth": "Laterality F1 vs truth", "mirror_flip_rate": "Mirror test (flip rate)",
              "healthy_specificity": "Healthy specificity", "side_acc_truth": "Side accuracy vs truth",
              "bilateral_named": "Bilateral lesions named bilateral", "edema_balanced": "Edema, balanced accuracy",
              "necrosis_balanced": "Necrosis, balanced accuracy",
              "compression_balanced": "Ventricular compression, balanced accuracy",
              "path_f1_ext": "Pathology F1 (extended)"}
    rows = ["<table><tr><th>measure</th><th>mean [95% CI]</th><th>n</th><th>target</th><th></th></tr>"]
    for key, label in labels.items():
        e, t = h.get(key, {}), h["targets"][key]
        mean = "n/a" if e.get("mean") is None else f"{e['mean']:.3f} [{e['lo']:.3f}, {e['hi']:.3f}]"
        status = "<span class='ok'>met</span>" if t["met"] else "<span class='miss'>not met</span>"
        rows.append(f"<tr><td>{label}</td><td>{mean}</td><td>{e.get('n', 0)}</td><td>≥ {t['target']:.2f}</td>"
                    f"<td>{status}</td></tr>")
    c = h.get("path_f1_ext_ceiling") or {}
    if c.get("mean") is not None:
        rows.append(f"<tr><td>Pathology F1 (extended) of a perfect writer: a second paraphrase of the true labels"
                    f"</td><td>{c['mean']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]</td><td>{c['n']}</td><td>ceiling</td>"
                    "<td></td></tr>")
    return "".join(rows) + "</table>"


def _html_table(rows: dict, columns, cell) -> str:
    cols = [(k, label) for k, label in columns if any(k in r for r in rows.values())]
    if not cols:
        return ""
    head = "<tr><th>system</th>" + "".join(f"<th>{html.escape(label)}</th>" for _, label in cols) + "</tr>"
    body = "".join("<tr><td>" + html.escape(name) + "</td>" + "".join(
        f"<td>{html.escape(cell(r.get(k)))}</td>" for k, _ in cols) + "</tr>" for name, r in rows.items())
    return f"<table>{head}{body}</table>"


def showcase(out: Path, n_per_group: int = 1) -> list:
    """(group, Record) of the test subjects the page shows: the first of each group (left, right, bilateral,
    healthy) that has a prediction."""
    from brain3d.data.manifest import read_manifest

    preds = {r["id"] for r in read_jsonl(out / "eval" / "predictions.jsonl")}
    chosen, seen = [], {}
    for rec in read_manifest(out / "cohort" / "manifest.jsonl", split="test"):
        group = "healthy" if rec.healthy else (rec.truth.side if rec.truth else None) or "undefined"
        if rec.id in preds and seen.get(group, 0) < n_per_group:
            seen[group] = seen.get(group, 0) + 1
            chosen.append((group, rec))
    return chosen


def _explain_section(out: Path, summary: dict) -> str:
    """The pointing game of the side explanations over the test split, against chance."""
    from brain3d.explain.pointing import verdict

    e = summary.get("explain")
    if not e:
        return ""
    names = {"side_hit": "top supporting region on the lesion's side",
             "top_in_lesion": "top supporting region touches the lesion",
             "energy_in_lesion": "share of positive attribution inside the lesion"}
    game = e.get("pointing") or {}
    rows = []
    for key, label in names.items():
        g = game.get(key) or {}
        if not g.get("n"):
            continue
        lift = g["over_chance"]
        rows.append(f"<tr><td>{label}</td><td>{g['mean']:.3f} [{g['lo']:.3f}, {g['hi']:.3f}]</td><td>{g['n']}</td>"
                    f"<td>{g['chance']:.3f}</td><td>{lift['mean']:+.3f} [{lift['lo']:+.3f}, {lift['hi']:+.3f}]</td>"
                    f"<td>{verdict(g)}</td></tr>")
    what = ("why the final model wrote its side: the log-odds of the written side word against its mirror"
            if e["target"] == "side" else f"the final model's report score ({html.escape(e['target'])} target)")
    return ("<h2>Explanations (3D LIME) and the pointing game</h2><p class='small'>For each test subject with a "
            f"lesion mask, {what}, explained by LIME over {e['segments']} SLIC supervoxels with {e['samples']} "
            f"perturbed volumes (<code>brain3d explain --target {html.escape(e['target'])}</code>). "
            f"{e['explained']} of {e['subjects']} subjects explained"
            + (f"; {e['no_side_word']} reports name no side" if e.get("no_side_word") else "")
            + f"; {e['seconds']:.0f} s in all. Means with 95% bootstrap CIs over subjects; chance is what a map "
            "with no grounding would score on each subject (0.5 for the side; the lesion's share of the brain; the "
            "share of supervoxels touching the lesion), compared subject by subject. Red regions support the written side, blue ones speak against it; "
            "the maps (<code>explain/&lt;id&gt;_lime.nii.gz</code>) open over the scans in any viewer.</p>"
            "<table><tr><th>measure</th><th>mean [95% CI]</th><th>n</th><th>chance</th>"
            "<th>measure − chance [95% CI]</th><th></th></tr>"
            + "".join(rows) + "</table>")


def _subjects(out: Path) -> str:
    """One test subject per group (left, right, bilateral, healthy): tri-planar view, its side explanation, reports."""
    import tempfile

    from brain3d.io import read_volume
    from brain3d.viz import save_triplanar_png

    preds = {r["id"]: r for r in read_jsonl(out / "eval" / "predictions.jsonl")}
    explained = {r["id"]: r for r in read_jsonl(out / "explain" / "explanations.jsonl")} if (
        out / "explain" / "explanations.jsonl").is_file() else {}
    blocks = []
    with tempfile.TemporaryDirectory() as tmp:
        for group, rec in showcase(out):
            vol = read_volume(rec.images["flair"])
            mask = read_volume(rec.mask).data if rec.mask else None
            png = save_triplanar_png([(rec.id, vol.data, vol.spacing, mask)], Path(tmp) / f"{rec.id}.png", dpi=80)
            p = preds[rec.id]
            mirror = p.get("generated_mirror")
            lime, why = out / "explain" / f"{rec.id}_lime.png", explained.get(rec.id, {})
            blocks.append(
                "<div class='subject'>"
                f"<div><img alt='{html.escape(rec.id)}' src='data:image/png;base64,{_b64(png)}'>"
                + (f"<img alt='{html.escape(rec.id)} LIME' src='data:image/png;base64,{_b64(lime)}'>"
                   f"<div class='small'>{html.escape(_why(why))}</div>" if lime.is_file() else
                   f"<div class='small'>{html.escape(why.get('error') or '')}</div>")
                + "</div>"
                f"<div><b>{html.escape(rec.id)}</b> — truth: {html.escape(group)}"
                + (f", lobes {', '.join(rec.truth.lobes)}" if rec.truth and rec.truth.lobes else "")
                + f"; stored orientation {''.join(vol.orientation)}"
                f"<div class='small'>generated</div><div class='report'>{html.escape(p['generated'])}</div>"
                + (f"<div class='small'>generated for the mirrored scan</div><div class='report'>{html.escape(mirror)}</div>"
                   if mirror else "")
                + f"<div class='small'>reference</div><div class='report'>{html.escape(p['reference'])}</div></div></div>")
    return "".join(blocks)


def _why(row: dict) -> str:
    """One line on a side explanation: the word explained and its strongest supporting region."""
    top = (row.get("top_supporting") or [None])[0]
    where = (f"strongest support: a region in the {top['side']} hemisphere"
             + (f" ({top['lobe']})" if top.get("lobe") else "") if top else "no region supports it")
    words = ", ".join(row.get("words") or []) or f"the {row.get('target')}"
    return f"Why '{words}'? {where}; fit R² {row['fit']['r2']:.2f}."


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"
