"""`brain3d train --processes N`: the command every rank runs, and no second launch from inside a rank."""

from __future__ import annotations

import sys

from brain3d.ranks import launch_command, under_launcher
from brain3d.train.launch import train_argv


def test_train_argv_is_the_same_run():
    argv = train_argv("tiny", "m.jsonl", "run", "1,2a", True, "v", None, ["phases.1.epochs=2", "seed=3"], quiet=True)
    assert argv == ["train", "--config", "tiny", "--manifest", "m.jsonl", "--out", "run", "--phases", "1,2a",
                    "--resume", "--vision-model", "v", "--set", "phases.1.epochs=2", "--set", "seed=3", "--quiet"]
    assert "--processes" not in argv  # a rank never launches again


def test_launch_command_runs_brain3d_under_torchrun():
    cmd = launch_command(2, ["train", "--config", "tiny"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--standalone" in cmd
    assert cmd[-5:] == ["-m", "brain3d", "train", "--config", "tiny"]


def test_under_launcher_reads_the_rank_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not under_launcher()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert under_launcher()
