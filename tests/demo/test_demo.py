"""`brain3d demo --quick` end to end: every output exists and parses; a rerun resumes instead of redoing."""

from __future__ import annotations

import json
import re

import pytest

from brain3d.cli import main


def test_quick_demo_writes_a_readable_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "lat_f1_truth" in printed.out and "index.html" in printed.out

    summary = json.loads((out / "demo.json").read_text(encoding="utf-8"))
    head = summary["headline"]
    for key in ("lat_f1_truth", "mirror_flip_rate", "path_f1_ext", "healthy_specificity"):
        assert key in head and key in head["targets"]
    for key in ("lat_f1_truth", "path_f1_ext", "healthy_specificity"):  # the quick cohort has every class
        e = head[key]
        assert e["mean"] is not None and e["lo"] <= e["mean"] <= e["hi"] and e["n"] > 0
    metrics = json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))
    rows = [json.loads(x) for x in (out / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert metrics["n"] == len(rows)
    # the mirror flip rate, recounted here: lateralised reports whose mirror names the other side
    from brain3d.vocabulary import side_of

    pairs = [(side_of(r["generated"]), side_of(r["generated_mirror"])) for r in rows]
    flips = [m == {"left": "right", "right": "left"}[s] for s, m in pairs if s in ("left", "right")]
    e = head["mirror_flip_rate"]
    assert e["n"] == len(flips)
    if flips:
        assert e["mean"] == pytest.approx(sum(flips) / len(flips)) and e["lo"] <= e["mean"] <= e["hi"]
    else:  # no lateralised report: nothing to average, and the headline says so rather than inventing a rate
        assert e["mean"] is None
    assert "mirror" in metrics["diagnostics"]
    ablation = json.loads((out / "ablation" / "ablation.json").read_text(encoding="utf-8"))
    assert list(ablation["phases"]) == ["phase1", "phase2a", "phase2b"]
    for phase in ("phase1", "phase2a", "phase2b"):
        assert (out / "run" / phase / "config.json").is_file()

    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    for section in ("Headline", "paper Table I columns", "Ablation over training phases", "Mirror test", "Subjects",
                    "Brain3D vs the 2D-slice baseline", "Explanations (3D LIME) and the pointing game"):
        assert section in html
    assert "a wiring check of the comparison, not a claim about MedGemma" in html
    comparison = summary["baseline_comparison"]
    assert comparison["paired"]["n_shared"] == metrics["n"]  # the same subjects
    assert comparison["baseline"]["prefill"]["image"] == 8 * 16 > comparison["brain3d"]["prefill"]["image"] == 8
    assert len(re.findall(r"src='data:image/png;base64,", html)) >= 4  # curves and subjects, embedded
    assert "src='http" not in html  # self-contained

    explain = summary["explain"]
    assert explain["target"] == "report" and explain["samples"] == 16 and explain["explained"] >= 1
    game = json.loads((out / "explain" / "pointing.json").read_text(encoding="utf-8"))
    assert game == {"target": "report", "split": "test", **explain["pointing"]} and game["n_scans"] >= 1
    lime_pngs = sorted(p.name for p in (out / "explain").glob("*_lime.png"))
    assert lime_pngs and len(lime_pngs) <= 4  # only the subjects the page shows
    assert len(list((out / "explain").glob("*_lime.nii.gz"))) == explain["explained"]
    assert f"alt='{lime_pngs[0][:-len('_lime.png')]} LIME'" in html

    # a second run finds every step done and only rewrites the page
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("already done, skipped") == 7
