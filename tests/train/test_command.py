"""`brain3d train` from the command line, early stopping with best-state restore, the metrics log."""

import json

import pytest
import yaml

from brain3d.cli import main
from brain3d.fsutil import read_jsonl
from brain3d.model.brain3d import Brain3D
from brain3d.train.loop import evaluate
from brain3d.train.run import Trainer

from .conftest import fast_config


def _args(tmp_path, manifest, tiny_models, cfg, *extra):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return ["train", "--config", str(path), "--manifest", str(manifest), "--out", str(tmp_path / "run"),
            "--vision-model", str(tiny_models["vision"]), "--language-model", str(tiny_models["language"]),
            "--quiet", *extra]


def test_train_command_runs_a_phase_and_writes_logs(tmp_path, train_manifest, tiny_models, capsys):
    assert main(_args(tmp_path, train_manifest, tiny_models, fast_config(), "--phases", "1")) == 0
    printed = json.loads(capsys.readouterr().out)
    run = tmp_path / "run"
    assert printed["phases"]["1"]["checkpoint"] == str(run / "phase1")
    assert not (run / "phase2a").exists()
    rows = read_jsonl(run / "metrics.jsonl")
    assert {r["kind"] for r in rows} == {"step", "epoch"}
    diag = json.loads((run / "diagnostics" / "phase1.json").read_text())
    for key in ("token_cosine_real_vs_zero", "token_cosine_real_vs_shuffled", "text_changes_zero", "ignores_image"):
        assert key in diag
    assert set(diag["texts"]) == {"real", "zero", "shuffled", "mirrored"}
    # the next phases continue the same run from its phase-1 checkpoint
    assert main(_args(tmp_path, train_manifest, tiny_models, fast_config(), "--phases", "2a")) == 0
    assert (run / "phase2a" / "brain3d.safetensors").is_file()


def test_train_command_reports_a_refused_batch_in_one_line(tmp_path, train_manifest, tiny_models, capsys):
    code = main(_args(tmp_path, train_manifest, tiny_models, fast_config(), "--phases", "1",
                      "--set", "phases.1.batch_size=1"))
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 volumes" in err and "Traceback" not in err


def test_train_command_refuses_an_unknown_setting(tmp_path, train_manifest, tiny_models, capsys):
    assert main(_args(tmp_path, train_manifest, tiny_models, fast_config(), "--set", "phases.2a.epoks=3")) == 2
    assert "epoks" in capsys.readouterr().err


def test_early_stopping_restores_the_best_validation_state(tmp_path, train_manifest, tiny_models):
    # a learning rate far too high for phase 1: validation InfoNCE falls, then rises, and patience 1 stops it
    cfg = fast_config(phases__1__epochs=6, phases__1__lr=1e-2, phases__1__group_lr={}, phases__1__patience=1,
                      phases__1__warmup_ratio=0.0, diagnostics__enabled=False)
    trainer = Trainer(cfg, train_manifest, tmp_path / "run", progress=False, vision_model=tiny_models["vision"],
                      language_model=tiny_models["language"])
    entry = trainer.run("1")["phases"]["1"]
    vals = [r["val_loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")
            if r["kind"] == "epoch" and r["epoch"] >= 0]
    assert entry["stopped_early"] and entry["epochs_run"] == len(vals) < 6
    assert entry["best_val_loss"] == pytest.approx(min(vals)) and vals[-1] > min(vals)
    assert vals.index(min(vals)) == entry["best_epoch"] < len(vals) - 1
    # the saved checkpoint is the best epoch's state, not the last one
    model = Brain3D.from_pretrained(tmp_path / "run" / "phase1")
    data, _ = trainer.prepare_phase("1", model)
    got = evaluate(model, cfg.phases["1"], data, cfg.eval_batch_size)
    assert got == pytest.approx(entry["best_val_loss"], rel=1e-5)
    assert got != pytest.approx(vals[-1], rel=1e-5)
