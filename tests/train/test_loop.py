"""The loop's bookkeeping on a scripted model: early stopping, best-state restore, accumulation, schedule."""

from pathlib import Path

import pytest
import torch
from torch import nn

from brain3d.data.dataset import ReportDataset
from brain3d.data.manifest import Record
from brain3d.fsutil import read_jsonl
from brain3d.train.loop import LoopContext, PhaseData, run_phase
from brain3d.train.phases import PhaseConfig


class Scripted(nn.Module):
    """One weight w. Training loss (w - 10)^2 pulls w up; validation loss (w - 3)^2 is best at w = 3, so the
    validation loss falls, then rises once w overshoots: the shape early stopping exists for."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.forward_batches: list[int] = []

    @property
    def device(self):
        return torch.device("cpu")

    def param_groups(self):
        return {"projector": [self.w], "gate": []}

    def trainable_state_dict(self):
        return {"w": self.w.detach()}

    def load_trainable_state_dict(self, state):
        with torch.no_grad():
            self.w.copy_(state["w"])

    def forward(self, reports, features=None, volumes=None):
        self.forward_batches.append(len(reports))
        target = 10.0 if self.training else 3.0
        return type("Out", (), {"loss": (self.w - target) ** 2 + 0 * features.sum()})()


def _data(n_train=8, n_val=2):
    recs = [Record(id=f"s{i}", images={"flair": "x"}, report=f"r{i}") for i in range(n_train + n_val)]
    source = lambda rec, mirrored: torch.zeros(3, 2)  # noqa: E731
    return PhaseData(train=ReportDataset(recs[:n_train], source), val=ReportDataset(recs[n_train:], source),
                     inputs="features")


def _ctx(tmp_path: Path) -> LoopContext:
    from accelerate import Accelerator

    return LoopContext(Accelerator(cpu=True), seed=0, state_dir=tmp_path / "state", metrics_path=tmp_path / "m.jsonl",
                       max_grad_norm=None, eval_batch_size=4, progress=False)


def _phase(**kw) -> PhaseConfig:
    base = dict(groups=["projector"], objective="lm", inputs="features", epochs=8, batch_size=4, lr=0.75,
                weight_decay=0.0, warmup_ratio=0.0, min_lr_ratio=1.0, patience=1)
    return PhaseConfig(**{**base, **kw})


def test_early_stopping_restores_the_best_validation_state(tmp_path):
    model = Scripted()
    result = run_phase(_ctx(tmp_path), "2a", _phase(), model, _data())
    vals = [r["val_loss"] for r in read_jsonl(tmp_path / "m.jsonl") if r["kind"] == "epoch" and r["epoch"] >= 0]
    assert result.stopped_early and result.epochs_run == len(vals) < 8
    assert vals[-1] > min(vals) and result.best_epoch == vals.index(min(vals)) < len(vals) - 1
    assert result.best_val_loss == pytest.approx(min(vals))
    assert result.initial_val_loss == pytest.approx(9.0)  # w = 0 before training
    # the model holds the best epoch's weight, not the last one
    assert (model.w.item() - 3.0) ** 2 == pytest.approx(min(vals), abs=1e-6)


def test_gradient_accumulation_steps_the_optimizer_once_per_group(tmp_path):
    model = Scripted()
    result = run_phase(_ctx(tmp_path), "2a", _phase(epochs=2, batch_size=2, grad_accum=3, patience=None), model,
                       _data(n_train=8))
    # 8 subjects / batch 2 = 4 batches per epoch -> groups of 3 + 1 -> 2 optimizer steps per epoch
    assert result.steps == 4
    steps = [r for r in read_jsonl(tmp_path / "m.jsonl") if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(r["lr"] == pytest.approx(0.75) for r in steps)  # min_lr_ratio 1 = constant


def test_cosine_schedule_is_applied_per_optimizer_step(tmp_path):
    model = Scripted()
    run_phase(_ctx(tmp_path), "2a", _phase(epochs=2, patience=None, min_lr_ratio=0.0, warmup_ratio=0.25), model, _data())
    lrs = [r["lr"] for r in read_jsonl(tmp_path / "m.jsonl") if r["kind"] == "step"]
    assert lrs == pytest.approx([0.375, 0.75, 0.375, 0.0])  # warm-up 1 step, then half cosine over 3
