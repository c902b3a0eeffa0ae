"""Brain3D beside the slice baseline: same subjects, paired differences, prefill counts of both."""

from __future__ import annotations

import json

import pytest

from brain3d.baselines.comparison import slice_baseline_comparison
from brain3d.baselines.medgemma2d import SliceBaselineOptions, run_slice_baseline
from brain3d.errors import Brain3DError
from brain3d.eval.evaluate import EvaluateOptions, evaluate_checkpoint
from brain3d.eval.nlg import NLGOptions
from brain3d.eval.scoring import ScoreOptions, score_predictions
from brain3d.fsutil import read_jsonl

SCORE = ScoreOptions(nlg=NLGOptions(meteor=False, bertscore=False), n_boot=100)


@pytest.fixture(scope="module")
def scored(tiny_models, cohort, tmp_path_factory):
    """(evaluate folder of an untrained tiny Brain3D, scored baseline folder, the Brain3D model)."""
    import torch

    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    root = tmp_path_factory.mktemp("comparison")
    torch.manual_seed(0)
    model = Brain3D.build(tiny_config(tiny_models))
    model.save_pretrained(root / "ckpt")
    evaluate_checkpoint(root / "ckpt", cohort, root / "eval", EvaluateOptions(
        split=None, max_new_tokens=6, batch_size=4, device="cpu", progress=False, score=SCORE), model=model)
    run_slice_baseline(tiny_models["language"], cohort, root / "baseline", SliceBaselineOptions(
        split=None, slices=4, slice_size=32, batch_size=4, max_new_tokens=6, device="cpu", progress=False))
    rows = read_jsonl(root / "baseline" / "predictions.jsonl")
    score_predictions(rows[:3], root / "baseline", SCORE, source=root / "baseline" / "predictions.jsonl")
    return root / "eval", root / "baseline", model


def test_comparison_pairs_the_shared_subjects_and_counts_both_prefills(scored):
    eval_dir, base_dir, model = scored
    result = slice_baseline_comparison(eval_dir, base_dir, n_boot=100)
    paired = result["paired"]
    assert paired["n_shared"] == 3 and paired["only_a"] == 1 and paired["only_b"] == 0
    assert result["brain3d"]["n"] == 4 and result["baseline"]["n"] == 3
    for key in ("path_f1", "lat_f1", "bleu1"):
        d = paired["metrics"][key]
        assert d["lo"] <= d["diff"] <= d["hi"]
        assert d["diff"] == pytest.approx(d["mean_a"] - d["mean_b"])

    layout = model.layout
    assert result["brain3d"]["prefill"] == {"total": len(layout.before) + 8 + len(layout.after), "image": 8}
    info = json.loads((base_dir / "baseline.json").read_text(encoding="utf-8"))
    assert result["baseline"]["prefill"] == {"total": info["prefill_tokens"], "image": 4 * 16}
    assert result["baseline"]["prefill"]["total"] > result["brain3d"]["prefill"]["total"]


def test_an_unscored_folder_is_refused(scored, tmp_path):
    eval_dir, _, _ = scored
    with pytest.raises(Brain3DError, match="score both systems"):
        slice_baseline_comparison(eval_dir, tmp_path)
