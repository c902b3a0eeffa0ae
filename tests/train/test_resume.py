"""A run killed after an epoch's state was written and resumed ends exactly where an unbroken run ends."""

import pytest
import torch
from safetensors.torch import load_file

from brain3d.errors import ConfigError
from brain3d.fsutil import read_jsonl
from brain3d.model.brain3d import Brain3D
from brain3d.train.run import train

from .conftest import fast_config

EPOCHS = dict(phases__1__epochs=2, phases__2a__epochs=2, phases__2b__epochs=2, diagnostics__enabled=False)


class Killed(Exception):
    pass


def _kill_at(phase: str, epoch: int):
    def on_epoch_end(p, e, info):
        if (p, e) == (phase, epoch):
            raise Killed(f"killed after phase {p} epoch {e}")
    return on_epoch_end


def _run(out, manifest, tiny_models, **kw):
    return train(fast_config(**EPOCHS), manifest, out, progress=False, vision_model=tiny_models["vision"],
                 language_model=tiny_models["language"], **kw)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory, train_manifest, tiny_models):
    out = tmp_path_factory.mktemp("unbroken") / "run"
    return out, _run(out, train_manifest, tiny_models)


def _tensors(ckpt):
    out = load_file(str(ckpt / "brain3d.safetensors"))
    if (ckpt / "adapter").is_dir():
        out.update({f"adapter/{k}": v for k, v in load_file(str(ckpt / "adapter" / "adapter_model.safetensors")).items()})
    return out


def _rows(out):
    return [(r["kind"], r["phase"], r["epoch"], r["step"], r.get("loss"), r.get("val_loss"))
            for r in read_jsonl(out / "metrics.jsonl")]


@pytest.mark.parametrize("phase", ["1", "2b"])
def test_killed_and_resumed_run_matches_unbroken_run(tmp_path, train_manifest, tiny_models, unbroken, phase):
    ref_out, ref = unbroken
    out = tmp_path / "run"
    with pytest.raises(Killed):
        _run(out, train_manifest, tiny_models, on_epoch_end=_kill_at(phase, 0))
    assert (out / "state" / "state.json").is_file() and not (out / f"phase{phase}").exists()
    with pytest.raises(ConfigError, match="--resume"):
        _run(out, train_manifest, tiny_models)  # an interrupted run is never silently overwritten
    summary = _run(out, train_manifest, tiny_models, resume=True)
    assert not (out / "state").exists()
    for name in ("1", "2a", "2b"):
        a, b = _tensors(ref_out / f"phase{name}"), _tensors(out / f"phase{name}")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
        assert summary["phases"][name]["best_val_loss"] == ref["phases"][name]["best_val_loss"]
    assert _rows(out) == _rows(ref_out)  # the interrupted epoch's rows are not duplicated


def test_resume_refuses_a_changed_config(tmp_path, train_manifest, tiny_models):
    out = tmp_path / "run"
    with pytest.raises(Killed):
        _run(out, train_manifest, tiny_models, phases="1", on_epoch_end=_kill_at("1", 0))
    with pytest.raises(ConfigError, match="changed: seed"):
        train(fast_config(seed=4, **EPOCHS), train_manifest, out, phases="1", resume=True, progress=False,
              vision_model=tiny_models["vision"], language_model=tiny_models["language"])


def test_every_phase_checkpoint_loads_on_its_own(unbroken, tiny_models):
    ref_out, ref = unbroken
    for name in ("1", "2a", "2b"):
        ckpt = ref_out / f"phase{name}"
        assert ref["phases"][name]["checkpoint"] == str(ckpt)
        model = Brain3D.from_pretrained(ckpt)
        assert model.has_lora == (name == "2b")
        assert model.checkpoint_extra["phase"] == name
        assert model.checkpoint_extra["train_config"]["seed"] == 3
    assert (ref_out / "train_config.yaml").is_file()
    for name in ("1", "2a", "2b"):
        assert (ref_out / "curves" / f"phase{name}.png").stat().st_size > 1000
