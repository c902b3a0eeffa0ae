"""`brain3d evaluate` / `brain3d ablate` on tiny random checkpoints and a tiny synthetic cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brain3d.cli import main
from brain3d.errors import Brain3DError
from brain3d.eval.evaluate import PREDICTIONS, EvaluateOptions, evaluate_checkpoint, load_model
from brain3d.eval.nlg import NLGOptions
from brain3d.eval.scoring import ScoreOptions

FAST_SCORE = ["--no-meteor", "--no-bertscore", "--n-boot", "200"]
N_SUBJECTS = 4


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from brain3d.synth.cohort import make_cohort

    return make_cohort(tmp_path_factory.mktemp("eval-cohort") / "c", n_pathological=3, n_healthy=1, seed=3,
                       voxel_mm=6.0, progress=False)


@pytest.fixture(scope="module")
def run_dir(tiny_models, tmp_path_factory) -> Path:
    """A training-run folder with untrained phase1 / phase2a / phase2b (LoRA) checkpoints of the tiny twin."""
    import torch

    from brain3d.model.brain3d import Brain3D
    from brain3d.twin.tiny import tiny_config

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    model = Brain3D.build(tiny_config(tiny_models))
    extra = {"train_config": {"data": {"low": 1.0, "high": 99.0, "nonzero": False}}}
    model.save_pretrained(run / "phase1", extra=extra)
    with torch.no_grad():
        model.projector.vis_scale.fill_(0.5)  # phases differ in a trained tensor
    model.save_pretrained(run / "phase2a", extra=extra)
    model.add_lora()
    model.save_pretrained(run / "phase2b", extra=extra)
    return run


def _opts(**kw) -> EvaluateOptions:
    return EvaluateOptions(split=None, max_new_tokens=6, batch_size=2, device="cpu", progress=False,
                           score=ScoreOptions(nlg=NLGOptions(meteor=False, bertscore=False), n_boot=200), **kw)


def test_evaluate_command_generates_and_scores(run_dir, cohort, tmp_path):
    out = tmp_path / "ev"
    rc = main(["evaluate", "-c", str(run_dir / "phase2b"), "-m", str(cohort), "--out", str(out), "--split", "all",
               "--max-new-tokens", "6", "--batch-size", "2", "--mirror", "--device", "cpu", *FAST_SCORE])
    assert rc == 0
    rows = [json.loads(x) for x in (out / PREDICTIONS).read_text(encoding="utf-8").splitlines()]
    manifest_ids = [json.loads(x)["id"] for x in cohort.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == manifest_ids
    assert all(r["generated"] and "generated_mirror" in r for r in rows)
    assert all(r["truth"] is not None for r in rows if not r["healthy"])
    assert all(r["sequences"] == ["flair"] for r in rows)  # what the checkpoint read, for the unassessable count
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == N_SUBJECTS and metrics["system"] == "phase2b"
    assert metrics["unassessable"]["n"] == N_SUBJECTS and metrics["unassessable"]["unassessable"] == ["enhancement"]
    assert "mirror" in metrics["diagnostics"]
    assert "| phase2b |" in (out / "metrics.md").read_text(encoding="utf-8")
    info = json.loads((out / "evaluate.json").read_text(encoding="utf-8"))
    assert info["profile"] == "greedy" and info["mirror"] is True and info["split"] is None


class CountingModel:
    """Wraps a Brain3D and counts the volumes it generates for."""

    def __init__(self, model):
        self.model, self.generated = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, volumes, **kw):
        self.generated += volumes.shape[0]
        return self.model.generate(volumes=volumes, **kw)


def test_evaluate_resumes_after_an_interruption(run_dir, cohort, tmp_path):
    ckpt = run_dir / "phase1"
    model = CountingModel(load_model(ckpt, _opts()))
    first = evaluate_checkpoint(ckpt, cohort, tmp_path, _opts(), model=model)
    assert model.generated == N_SUBJECTS
    pred = tmp_path / PREDICTIONS
    lines = pred.read_text(encoding="utf-8").splitlines()
    # interrupted: the last two subjects missing, the last write torn in half
    pred.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    model.generated = 0
    again = evaluate_checkpoint(ckpt, cohort, tmp_path, _opts(), model=model)
    assert model.generated == 2
    assert pred.read_text(encoding="utf-8").splitlines() == lines  # greedy decoding: the same reports, the same order
    assert again["metrics"]["bleu1"] == first["metrics"]["bleu1"]
    # rows of a run made before sequences were recorded: the same checkpoint read them, so they are filled in
    pred.write_text("".join(json.dumps({k: v for k, v in json.loads(x).items() if k != "sequences"}) + "\n"
                            for x in lines))
    model.generated = 0
    old = evaluate_checkpoint(ckpt, cohort, tmp_path, _opts(), model=model)
    assert model.generated == 0 and old["unassessable"]["n"] == N_SUBJECTS
    with pytest.raises(Brain3DError, match="profile"):
        evaluate_checkpoint(ckpt, cohort, tmp_path, _opts(profile="paper"), model=model)


def test_ablate_writes_table_one(run_dir, cohort, tmp_path, capsys):
    out = tmp_path / "abl"
    rc = main(["ablate", str(run_dir), "-m", str(cohort), "--out", str(out), "--split", "all",
               "--max-new-tokens", "6", "--batch-size", "4", "--device", "cpu", "--limit", "2", *FAST_SCORE])
    assert rc == 0
    table = (out / "table.md").read_text(encoding="utf-8")
    for label in ("Brain3D phase 1", "Brain3D phase 2A", "Brain3D phase 2B (final)"):
        assert f"| {label} |" in table
    assert "| system | B-1 | B-4 | R-1 | R-2 | R-L | METEOR | BERTScore | CIDEr | Lat-F1 | Anat-F1 | Path-F1 |" in table
    summary = json.loads((out / "ablation.json").read_text(encoding="utf-8"))
    assert set(summary["paired_differences"]) == {"phase2a-phase1", "phase2b-phase2a"}
    ids = [[json.loads(x)["id"] for x in (out / p / PREDICTIONS).read_text(encoding="utf-8").splitlines()]
           for p in ("phase1", "phase2a", "phase2b")]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 2


def test_ablate_needs_phase_checkpoints(cohort, tmp_path, capsys):
    assert main(["ablate", str(tmp_path), "-m", str(cohort), "--out", str(tmp_path / "o")]) == 2
    assert "phase1/" in capsys.readouterr().err


def test_evaluate_on_a_full_disk_names_the_folder_and_a_rerun_finishes(run_dir, cohort, tmp_path, capsys, monkeypatch):
    from tests.disk import Disk, leftovers

    out = tmp_path / "ev"
    args = ["evaluate", "-c", str(run_dir / "phase1"), "-m", str(cohort), "--out", str(out), "--split", "all",
            "--max-new-tokens", "6", "--batch-size", "2", "--device", "cpu", *FAST_SCORE]
    disk = Disk(monkeypatch, writes=3)  # evaluate.json and two batches of predictions fit; the third is cut off
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: {out}: cannot write here: no space is left on the device; free space, then rerun to "
                       "resume (finished results are kept)")
    assert len((out / PREDICTIONS).read_text(encoding="utf-8").splitlines()) == 4  # whole batches, no torn line
    assert not (out / "metrics.json").exists() and leftovers(tmp_path) == []
    disk.free_space()
    assert main(args) == 0
    ids = [json.loads(x)["id"] for x in (out / PREDICTIONS).read_text(encoding="utf-8").splitlines()]
    assert ids == [json.loads(x)["id"] for x in cohort.read_text(encoding="utf-8").splitlines()]  # each once
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["n"] == N_SUBJECTS


def test_ablate_under_torchrun_says_to_evaluate_each_phase(monkeypatch, tmp_path):
    from brain3d.eval import ablate as ablate_module
    from brain3d.ranks import World

    monkeypatch.setattr(ablate_module, "world", lambda: World(rank=0, size=2))
    with pytest.raises(Brain3DError, match="ablate runs in one process"):
        ablate_module.ablate(tmp_path, tmp_path / "m.jsonl", tmp_path / "out")
