"""`brain3d score` / `brain3d compare` end to end, offline; clinical aggregation worked by hand."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import socket
import time

import pytest

from brain3d.cli import main
from brain3d.eval import nlg
from brain3d.eval.compare import compare_dirs
from brain3d.eval.scoring import ScoreOptions, read_per_sample, score_predictions
from brain3d.eval.tables import PAPER_COLUMNS
from tests.eval.cohort import prediction_rows

FAST = ScoreOptions(nlg=nlg.NLGOptions(meteor=False, bertscore=False))


@contextlib.contextmanager
def network_disabled():
    """Refuse every socket connection and put the HF libraries in offline mode."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket.socket, "connect_ex", refuse)
        mp.setattr(socket, "create_connection", refuse)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """One full `brain3d score` run (Java METEOR + BERTScore) with networking disabled."""
    root = tmp_path_factory.mktemp("score")
    rows = prediction_rows(60, seed=1)
    rows[0]["generated"] = rows[0]["reference"]  # an exact copy
    for r in rows[:20]:
        r["generated_mirror"] = r["generated"]  # a model that ignores the mirror: sides never flip
    preds = write_jsonl(root / "preds.jsonl", rows)
    nlg._bert_scorer.cache_clear()  # load the BERTScore model inside the offline block
    with network_disabled():
        with pytest.raises(OSError):
            socket.create_connection(("pypi.org", 443), timeout=1)
        t0 = time.perf_counter()
        rc = main(["score", str(preds), "--out", str(root / "out"), "--system", "synthetic"])
        seconds = time.perf_counter() - t0
    print(f"\nbrain3d score, {len(rows)} rows, all metrics, offline: {seconds:.1f} s")
    return {"rc": rc, "rows": rows, "out": root / "out", "seconds": seconds, "root": root}


def test_score_runs_offline_with_every_metric(scored):
    assert scored["rc"] == 0
    m = json.loads((scored["out"] / "metrics.json").read_text(encoding="utf-8"))
    assert m["n"] == 60 and m["system"] == "synthetic"
    for key, _ in PAPER_COLUMNS:
        e = m["metrics"][key]
        assert e["available"], (key, e.get("reason"))
        assert e["lo"] <= e["mean"] <= e["hi"] and e["n"] == 60
    assert "all-MiniLM-L6-v2" in m["bertscore_model"]
    assert m["metric_info"]["meteor"]["implementation"].startswith("pycocoevalcap Java METEOR")
    assert m["metric_info"]["bertscore"]["num_layers"] == 6


def test_per_sample_scores_are_sane(scored):
    per = read_per_sample(scored["out"])
    assert list(per) == [r["id"] for r in scored["rows"]]
    copy = per[scored["rows"][0]["id"]]
    others = [v for k, v in per.items() if k != scored["rows"][0]["id"]]
    assert copy["bleu1"] == pytest.approx(1.0) and copy["rougeL"] == pytest.approx(1.0)
    assert copy["bertscore"] == pytest.approx(1.0, abs=1e-4)
    assert copy["meteor"] > max(v["meteor"] for v in others)
    assert all(0.0 <= v["bertscore"] <= 1.0 + 1e-6 for v in per.values())


def test_metrics_md_is_the_paper_table(scored):
    md = (scored["out"] / "metrics.md").read_text(encoding="utf-8")
    header = "| system | " + " | ".join(label for _, label in PAPER_COLUMNS) + " |"
    assert header in md
    row = next(line for line in md.splitlines() if line.startswith("| synthetic |"))
    assert row.count("[") == len(PAPER_COLUMNS)  # mean [lo, hi] in every paper column
    assert "Healthy spec." in md and "Mirror test" in md and "all-MiniLM-L6-v2" in md


def test_mirror_diagnostic_counts_unflipped_sides(scored):
    mirror = json.loads((scored["out"] / "metrics.json").read_text(encoding="utf-8"))["diagnostics"]["mirror"]
    assert mirror["n_lateralised"] > 0 and mirror["flip_rate"] == 0.0 and mirror["same_side_rate"] == 1.0


def test_compare_two_scored_systems(scored, capsys):
    rows = [dict(r, generated=r["reference"]) for r in scored["rows"][:50]]  # B: perfect copies, 50 subjects
    score_predictions(rows, scored["root"] / "b", FAST)
    res = compare_dirs(scored["out"], scored["root"] / "b")
    assert res["n_shared"] == 50 and res["only_a"] == 10 and res["only_b"] == 0
    assert "meteor" not in res["metrics"]  # B did not compute it
    b1 = res["metrics"]["bleu1"]
    assert b1["mean_b"] == pytest.approx(1.0) and b1["hi"] < 0 and b1["p"] < 0.01  # copies beat paraphrases
    per_a = read_per_sample(scored["out"])
    lat = res["metrics"]["lat_f1"]  # B is perfect: the difference is A's shortfall on the shared subjects
    assert lat["diff"] == pytest.approx(sum(per_a[r["id"]]["lat_f1"] - 1 for r in rows) / 50)
    assert lat["lo"] <= lat["diff"] <= lat["hi"] <= 0
    assert main(["compare", str(scored["out"]), str(scored["root"] / "b"), "--out",
                 str(scored["root"] / "cmp.json")]) == 0
    printed = capsys.readouterr().out
    assert "| Lat-F1 |" in printed and "50 shared subjects" in printed
    assert json.loads((scored["root"] / "cmp.json").read_text(encoding="utf-8"))["n_shared"] == 50


def test_clinical_aggregation_by_hand(tmp_path):
    rows = [
        {"id": "h1", "reference": "Normal brain MRI. No lesion.", "generated": "No focal lesion is identified.",
         "healthy": True},
        {"id": "h2", "reference": "Normal brain MRI.", "generated": "Left frontal lesion with edema.",
         "healthy": True},
        {"id": "p1", "reference": "Left frontal lesion with edema. No necrosis.",
         "generated": "Left frontal lesion with edema and necrosis.", "healthy": False,
         "truth": {"side": "left", "lobes": ["frontal"],
                   "findings": {"edema": True, "necrosis": False, "enhancement": False, "compression": False}}},
        {"id": "p2", "reference": "Right temporal mass.", "generated": "Left temporal and parietal mass.",
         "healthy": False, "truth": {"side": "right", "lobes": ["temporal"], "findings": {}}},
    ]
    m = score_predictions(rows, tmp_path, FAST)
    mm = m["metrics"]
    assert mm["healthy_specificity"]["mean"] == 0.5 and mm["healthy_specificity"]["n"] == 2
    assert mm["pathology_sensitivity"]["mean"] == 1.0 and mm["pathology_sensitivity"]["n"] == 2
    # parity Path-F1: h1 {lesion} vs {lesion} 1; h2 {} vs {lesion,edema} 0; p1 {lesion,edema,necrosis} both 1;
    # p2 {mass} vs {mass} 1  -> 3/4
    assert mm["path_f1"]["mean"] == pytest.approx(0.75)
    # extended: h1 {} vs {} 1; h2 0; p1 {lesion,edema} vs +necrosis 0.8; p2 1 -> 2.8/4
    assert mm["path_f1_ext"]["mean"] == pytest.approx(0.7)
    # truth: side p1 ok, p2 wrong; healthy rows have no side: h1 ok, h2 wrong -> 2/4
    assert mm["side_acc_truth"]["mean"] == pytest.approx(0.5)
    # lobes vs truth: h1 1, h2 0 ({} vs {frontal}), p1 1, p2 {temporal} vs {temporal,parietal} 2/3
    assert mm["lobe_f1_truth"]["mean"] == pytest.approx((1 + 0 + 1 + 2 / 3) / 4)
    # findings vs truth: h1 4/4, h2 3/4 (edema), p1 3/4 (necrosis), p2 has no named findings -> n=3
    assert mm["findings_acc_truth"]["n"] == 3
    assert mm["findings_acc_truth"]["mean"] == pytest.approx((1 + 0.75 + 0.75) / 3)
    sub = m["subgroups"]
    assert sub["healthy"]["n"] == 2 and sub["left"]["n"] == 1 and sub["right"]["n"] == 1
    assert sub["right"]["metrics"]["lat_f1"]["mean"] == 0.0
    assert "meteor" in mm and not mm["meteor"]["available"]
    md = (tmp_path / "metrics.md").read_text(encoding="utf-8")
    assert "METEOR unavailable: disabled" in md
    with open(tmp_path / "per_sample.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert [r["group"] for r in table] == ["healthy", "healthy", "left", "right"]
    assert table[2]["healthy_specificity"] == "" and table[0]["meteor"] == ""


def test_subgroups_fall_back_to_the_reference_text(tmp_path):
    rows = [{"id": "a", "reference": "Right frontal tumor.", "generated": "Right frontal tumor."},
            {"id": "b", "reference": "Normal study without lesion.", "generated": "Normal study."}]
    m = score_predictions(rows, None, FAST)
    assert set(m["subgroups"]) == {"healthy", "pathological", "right"}
    assert "healthy: reference text" in m["group_source"]
    assert "side_acc_truth" in m["metrics"]  # the healthy subject is scored against "no finding"
    assert m["metrics"]["side_acc_truth"]["n"] == 1


def test_a_few_hundred_rows_score_in_seconds(tmp_path):
    rows = prediction_rows(300, seed=2)
    preds = write_jsonl(tmp_path / "p.jsonl", rows)
    t0 = time.perf_counter()
    assert main(["score", str(preds), "--out", str(tmp_path / "o"), "--no-meteor", "--no-bertscore"]) == 0
    seconds = time.perf_counter() - t0
    print(f"\nbrain3d score, 300 rows, no METEOR/BERTScore: {seconds:.1f} s")
    assert seconds < 30


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "reference": "x"}\n', "row 1 lacks generated"),
    ('{"id": "a", "reference": "x", "generated": "y"}\nnot json\n', "line 2 is not valid JSON"),
    ('{"id": "a", "reference": "x", "generated": "y"}\n{"id": "a", "reference": "x", "generated": "y"}\n',
     "repeats id"),
    ('{"id": "a", "reference": "x", "generated": "y", "truth": {"side": "up"}}\n', "invalid truth"),
    ("\n", "no prediction rows"),
])
def test_bad_predictions_files_fail_with_one_line(tmp_path, capsys, content, message):
    p = tmp_path / "p.jsonl"
    p.write_text(content)
    assert main(["score", str(p), "--out", str(tmp_path / "o"), "--no-meteor", "--no-bertscore"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(p) in err and "Traceback" not in err


def test_compare_needs_scored_folders(tmp_path, capsys):
    assert main(["compare", str(tmp_path), str(tmp_path)]) == 2
    assert "per_sample.csv" in capsys.readouterr().err


def test_nan_free_json(scored):
    text = (scored["out"] / "metrics.json").read_text(encoding="utf-8")
    assert "NaN" not in text and os.path.getsize(scored["out"] / "per_sample.csv") > 0
    assert not math.isnan(json.loads(text)["metrics"]["cider"]["mean"])
