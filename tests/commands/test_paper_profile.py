"""The paper profile at the real models' widths, end to end on CPU (`pytest -m realwidth` runs it alone).

Stand-ins of MedSigLIP-448 and MedGemma-1.5-4B-IT as published in everything but depth and values
(`brain3d tiny-models --widths paper --layers 2`: 1152 / 2560 wide, head_dim 256, 4 KV heads, 262,208-token
vocabulary, sharded bf16 safetensors under the real key names); four phantoms at 64x128x128 (2,592 tokens);
`brain3d train --config paper` with gradient checkpointing, one optimiser step per phase, bf16 as on a GPU;
`brain3d report --mirror-check`; the phase-2B checkpoint reloaded gives the tokens the trained model wrote; what
a checkpoint holds; the 4-bit NF4 language model through bitsandbytes' CPU backend.
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from brain3d.cli import main
from brain3d.data.manifest import read_manifest, write_manifest
from brain3d.model.published import LANGUAGE, VISION, published_config

pytestmark = [pytest.mark.realwidth, pytest.mark.slow]

LAYERS = 2
MAX_NEW = 8
TRAIN = ["precision=bf16", "threads=2", "eval_batch_size=4", f"diagnostics.max_new_tokens={MAX_NEW}"] + [
    f"phases.{p}.{k}={v}" for p in ("1", "2a", "2b") for k, v in (("epochs", 1), ("batch_size", 3), ("grad_accum", 1))
]


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB (Linux)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Stand-ins, cohort, training and reports, once; each test checks one part of the outcome."""
    from brain3d.synth.cohort import make_cohort

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("paper")
    models = root / "models"
    assert main(["tiny-models", str(models), "--widths", "paper", "--layers", str(LAYERS)]) == 0
    records = read_manifest(make_cohort(root / "cohort", 3, 1, seed=42, progress=False))
    # 3 train (one optimiser step of 3 per phase; phase 1 needs negatives), 1 validation subject
    records = [r.model_copy(update={"split": "val" if i == 0 else "train"}) for i, r in enumerate(records)]
    manifest = write_manifest(records, root / "cohort" / "four.jsonl")
    out = root / "run"
    args = ["train", "--config", "paper", "--manifest", str(manifest), "--out", str(out), "--quiet",
            "--vision-model", str(models / "vision"), "--language-model", str(models / "language")]
    assert main(args + [a for s in TRAIN for a in ("--set", s)]) == 0
    scan = records[1].image_paths()[0]
    reports = root / "reports"
    code = main(["report", scan, "--checkpoint", str(out / "phase2b"), "--out", str(reports), "--mirror-check",
                 "--precision", "bf16", "--max-new-tokens", str(MAX_NEW)])
    assert code == 0
    return {"root": root, "models": models, "run": out, "records": records, "scan": scan, "reports": reports,
            "manifest": manifest}


def test_stand_ins_are_the_published_models_cut_in_depth(run):
    for name, folder in ((VISION, "vision"), (LANGUAGE, "language")):
        written = json.loads((run["models"] / folder / "config.json").read_text(encoding="utf-8"))
        published = published_config(name)
        for tower in ("vision_config", "text_config"):
            assert written[tower]["num_hidden_layers"] == LAYERS
            same = {k: v for k, v in published[tower].items() if k not in ("num_hidden_layers", "sliding_window_pattern")}
            assert {k: written[tower][k] for k in same} == same
    index = json.loads((run["models"] / "language" / "model.safetensors.index.json").read_text(encoding="utf-8"))
    assert len(set(index["weight_map"].values())) == 2
    assert "language_model.model.embed_tokens.weight" in index["weight_map"]
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in index["weight_map"]


def test_paper_training_ran_each_phase_once_with_checkpointing(run):
    summary = json.loads((run["run"] / "summary.json").read_text(encoding="utf-8"))
    assert [summary["phases"][p]["steps"] for p in ("1", "2a", "2b")] == [1, 1, 1]
    assert all(summary["phases"][p]["final_train_loss"] is not None for p in ("1", "2a", "2b"))
    resolved = yaml.safe_load((run["run"] / "train_config.yaml").read_text(encoding="utf-8"))
    assert resolved["profile"] == "paper" and resolved["model"]["gradient_checkpointing"] is True
    assert resolved["model"]["image_size"] == [64, 128, 128]
    config = json.loads((run["run"] / "phase2b" / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["gradient_checkpointing"] is True and config["has_lora"] is True
    print(f"\npaper profile at {LAYERS} layers: {summary['seconds']:.0f} s training, peak RSS {_rss_gb():.1f} GiB")


def test_checkpoint_holds_brain3d_tensors_and_lora_only(run):
    ckpt = run["run"] / "phase2b"
    dv, dlm = 1152, 2560
    with safe_open(str(ckpt / "brain3d.safetensors"), "pt") as fh:
        shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    assert shapes["projector.fc1.weight"] == (dlm, dv) and shapes["projector.fc2.weight"] == (dlm, dlm)
    assert shapes["projector.vis_scale"] == () and shapes["encoder.stem.weight"] == (dv, 1, 2, 14, 14)
    assert "encoder.depth_pos" in shapes
    assert all(k.startswith(("encoder.stem.", "encoder.depth_pos", "projector.", "compressor.")) for k in shapes), shapes
    with safe_open(str(ckpt / "adapter" / "adapter_model.safetensors"), "pt") as fh:
        lora = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    assert len(lora) == LAYERS * 4 * 2 and all(".lora_A." in k or ".lora_B." in k for k in lora), sorted(lora)
    assert all(".self_attn." in k and "vision" not in k for k in lora)
    # sizes: float32 brain3d tensors and adapters, nothing of the 4B base weights
    numel = sum(torch.Size(s).numel() for s in shapes.values())
    r = 16
    lora_numel = LAYERS * r * ((dlm + 2048) + 2 * (dlm + 1024) + (2048 + dlm))  # q, k, v, o: 8 heads / 4 KV x 256
    assert sum(torch.Size(s).numel() for s in lora.values()) == lora_numel
    size = (ckpt / "brain3d.safetensors").stat().st_size
    assert numel * 4 <= size < numel * 4 + 64_000
    assert (ckpt / "adapter" / "adapter_model.safetensors").stat().st_size < lora_numel * 4 + 64_000
    print(f"\nphase-2B checkpoint: brain3d.safetensors {size / 1e6:.1f} MB, adapter {lora_numel * 4 / 1e6:.1f} MB")


def test_reloaded_phase2b_writes_the_tokens_the_trained_model_wrote(run):
    """diagnostics/phase2b.json holds the trained model's greedy texts for the validation subject (real, zero,
    shuffled and mirrored volume); the checkpoint reloaded from disk must write the same ones."""
    from brain3d.data.dataset import VolumeSource
    from brain3d.fsutil import stable_int
    from brain3d.model.brain3d import Brain3D
    from brain3d.train.config import validate_config
    from brain3d.train.diagnostics import image_reliance

    diag = json.loads((run["run"] / "diagnostics" / "phase2b.json").read_text(encoding="utf-8"))
    resolved = yaml.safe_load((run["run"] / "train_config.yaml").read_text(encoding="utf-8"))
    cfg = validate_config({k: v for k, v in resolved.items()})
    rec = next(r for r in read_manifest(run["manifest"]) if r.id == diag["subject"])
    volume = VolumeSource(cfg.preprocess(), cfg.sequences()).load(rec)
    model = Brain3D.from_pretrained(run["run"] / "phase2b", dtype=torch.bfloat16)
    again = image_reliance(model, volume, MAX_NEW, seed=stable_int(cfg.seed, "probe"),
                           autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert again["texts"] == diag["texts"]
    ids = model.tokenizer(again["texts"]["real"], add_special_tokens=False)["input_ids"]
    assert ids and max(ids) < 262_208


def test_report_and_mirror_check_at_real_widths(run):
    rows = [json.loads(line) for line in (run["reports"] / "reports.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and rows[0]["error"] is None
    assert rows[0]["report"] and rows[0]["mirrored_report"] is not None
    assert rows[0]["laterality_consistent"] in (True, False)


def test_report_with_a_4bit_language_model(run, capsys):
    """bitsandbytes 0.50's CPU backend quantises and runs the NF4 layers (without its optional `kernels` package
    it dequantises in torch: slower, same numbers)."""
    pytest.importorskip("bitsandbytes")
    out = run["root"] / "reports-4bit"
    assert main(["report", run["scan"], "--checkpoint", str(run["run"] / "phase2b"), "--load-4bit", "--json",
                 "--max-new-tokens", str(MAX_NEW), "--out", str(out)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["error"] is None and record["report"]
