"""The 2D-slice baseline end to end on the tiny twin: what the model is fed, resuming, and `brain3d score`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain3d.baselines.medgemma2d import PREDICTIONS, RUN_INFO, encode, load_processor, slice_messages
from brain3d.cli import main

FAST = ["--slices", "8", "--slice-size", "32", "--max-new-tokens", "6", "--device", "cpu", "--no-progress"]


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_messages_interleave_images_with_slice_numbers_then_the_instruction():
    content = slice_messages(3, "Describe")[0]["content"]
    assert [c["type"] for c in content] == ["image", "text"] * 3 + ["text"]
    assert [c["text"] for c in content if c["type"] == "text"] == ["SLICE 1", "SLICE 2", "SLICE 3", "Describe"]


def test_processor_feeds_each_slice_as_one_image_in_order(tiny_models):
    processor = load_processor(tiny_models["language"])
    slices = np.stack([np.full((32, 32), 30 * k, np.uint8) for k in range(4)])  # (4, 32, 32), brighter each slice
    inputs = encode(processor, [slices, slices[::-1]], "Describe")
    ids = inputs["input_ids"][0].tolist()
    tok = processor.tokenizer
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert ids.count(tok.image_token_id) == 4 * processor.image_seq_length
    means = inputs["pixel_values"].float().mean(dim=(1, 2, 3))  # (B * N,)
    assert inputs["pixel_values"].shape[0] == 8
    assert (means[:4].diff() > 0).all() and (means[4:].diff() < 0).all()
    assert "SLICE 4" in tok.decode(ids) and tok.decode(ids).rstrip().endswith("model")


def test_tiny_twin_run_is_resumable_and_scored_by_brain3d_score(tiny_models, cohort, tmp_path):
    out = tmp_path / "baseline"
    args = ["baseline", "medgemma-2d", "--model", str(tiny_models["language"]), "-m", str(cohort), "--out", str(out),
            "--split", "all", "--batch", "3", *FAST]
    assert main(args) == 0
    rows = _rows(out / PREDICTIONS)
    manifest = [json.loads(x) for x in cohort.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [m["id"] for m in manifest]
    assert all(r["generated"] and r["reference"] == m["report"] for r, m in zip(rows, manifest))
    info = json.loads((out / RUN_INFO).read_text(encoding="utf-8"))
    assert info["image_tokens"] == 8 * 16 and info["prefill_tokens"] > info["image_tokens"]
    assert info["slice_indices"] == [4, 12, 20, 28, 36, 44, 52, 60]

    # an interrupted run (two rows kept, the last one torn) resumes and greedy decoding gives the same text
    kept = (out / PREDICTIONS).read_text(encoding="utf-8").splitlines()[:2]
    (out / PREDICTIONS).write_text("\n".join(kept) + "\n" + '{"id": "torn', encoding="utf-8")
    assert main(args) == 0
    assert _rows(out / PREDICTIONS) == rows

    # other settings into the same folder are refused
    assert main([*args[:-len(FAST)], *FAST[:1], "4", *FAST[2:]]) == 2

    assert main(["score", str(out / PREDICTIONS), "--out", str(out), "--no-meteor", "--no-bertscore",
                 "--n-boot", "100"]) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == len(manifest) and "path_f1" in metrics["metrics"]


def test_prompt_longer_than_the_context_is_refused(tiny_models, cohort, tmp_path, capsys):
    rc = main(["baseline", "medgemma-2d", "--model", str(tiny_models["language"]), "-m", str(cohort),
               "--out", str(tmp_path / "b"), "--split", "all", "--slices", "64", "--max-new-tokens", "4000"])
    assert rc == 2 and "context" in capsys.readouterr().err
    assert not (tmp_path / "b" / PREDICTIONS).exists()


def test_a_folder_without_a_processor_is_refused(tiny_models, cohort, tmp_path, capsys):
    rc = main(["baseline", "medgemma-2d", "--model", str(tiny_models["vision"]), "-m", str(cohort),
               "--out", str(tmp_path / "b"), "--split", "all", *FAST])
    assert rc == 2 and "image processor" in capsys.readouterr().err
