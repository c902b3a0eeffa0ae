"""The same command in 2 CPU processes (DDP over gloo): `brain3d train --processes 2` starts torchrun itself."""

import json
import os
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file

from .conftest import fast_config


def test_two_process_cpu_run_completes_with_identical_replicas(tmp_path, train_manifest, tiny_models):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(fast_config(diagnostics__enabled=False).to_dict()))
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "PYTHONWARNINGS")}
    cmd = [sys.executable, "-m", "brain3d", "train", "--processes", "2", "--config", str(cfg),
           "--manifest", str(train_manifest), "--out", str(out), "--vision-model", str(tiny_models["vision"]),
           "--language-model", str(tiny_models["language"]), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]  # no rank prints a (Future)Warning
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["world_size"] == 2
    for name in ("1", "2a", "2b"):
        entry = summary["phases"][name]
        digests = entry["rank_digests"]
        assert len(digests) == 2 and digests[0] == digests[1], (name, digests)
        assert entry["steps"] > 0
        assert load_file(str(out / f"phase{name}" / "brain3d.safetensors"))
    # 8 train subjects, batch 4 per process, 2 processes: one step per epoch (a single process would take 2)
    assert summary["phases"]["2a"]["steps"] == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows if r["kind"] == "step")
