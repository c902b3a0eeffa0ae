"""`brain3d train` from the command line, early stopping with best-state restore, the metrics log."""

import json

import yaml

from brain3d.cli import main
from brain3d.fsutil import read_jsonl

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
    diag = json.loads((run / "diagnostics" / "phase1.json").read_text(encoding="utf-8"))
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


def test_train_on_a_full_disk_keeps_no_half_checkpoint_and_resumes(tmp_path, train_manifest, tiny_models, capsys,
                                                                    monkeypatch):
    from tests.disk import Disk, leftovers

    run = tmp_path / "run"
    args = _args(tmp_path, train_manifest, tiny_models, fast_config(), "--phases", "1")
    # config, two metric appends, the epoch's resume state, diagnostics and the loss curve fit; the checkpoint not
    disk = Disk(monkeypatch, writes=7)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: {run}: cannot write here: no space is left on the device; free space, then rerun with "
                       "--resume to continue from the last saved epoch")
    assert not (run / "phase1").exists() and (run / "state" / "state.json").is_file() and leftovers(tmp_path) == []
    disk.free_space()
    assert main([*args, "--resume"]) == 0
    assert (run / "phase1" / "brain3d.safetensors").is_file() and not (run / "state").exists()
    rows = [(r["kind"], r["phase"], r["epoch"], r.get("step")) for r in read_jsonl(run / "metrics.jsonl")]
    assert len(rows) == len(set(rows))  # every metric row once
