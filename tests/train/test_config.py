import pytest

from brain3d.errors import ConfigError
from brain3d.train.config import load_config
from brain3d.train.phases import parse_phases


def test_packaged_profiles_load_with_phase_defaults():
    paper = load_config("paper")
    assert paper.phases["1"].temperature == 0.07
    assert paper.phases["2a"].grad_accum == 8 and paper.phases["2a"].lr == 2e-4
    assert paper.phases["2b"].lr_of("lora") == 5e-5 and paper.phases["2b"].lr_of("projector") == 2e-4
    assert paper.phases["1"].lr_of("stem") == pytest.approx(5e-4 * 0.2)
    assert paper.phases["1"].lr_of("gate") == pytest.approx(5e-4 * 2)
    assert paper.preprocess().size == (64, 128, 128)
    tiny = load_config("tiny")
    assert tiny.vision_model == "tiny" and tiny.language_model == "tiny"
    assert tiny.preprocess().size != (64, 128, 128)


def test_overrides_and_yaml_files(tmp_path):
    cfg = load_config("tiny", ["phases.2a.epochs=3", "model.compressor=seq_pool", "data.flip=false"])
    assert cfg.phases["2a"].epochs == 3 and cfg.model["compressor"] == "seq_pool" and not cfg.data.flip
    p = tmp_path / "run.yaml"
    p.write_text("seed: 7\nphases:\n  1:\n    batch_size: 4\n")
    cfg = load_config(p)
    assert cfg.seed == 7 and cfg.phases["1"].batch_size == 4 and cfg.phases["1"].objective == "contrastive"


@pytest.mark.parametrize("text, match", [
    ("phases:\n  3:\n    epochs: 1\n", "unknown phase"),
    ("phases:\n  2a:\n    groups: [stem, wings]\n", "wings"),
    ("model:\n  compressor: avg\n", "compressor"),
    ("sed: 1\n", "sed"),
    ("model:\n  vision_model: /x\n", "top level"),
    ("[1, 2]\n", "mapping"),
])
def test_invalid_configs_name_the_setting(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(p)
    assert "bad.yaml" in str(info.value)


def test_missing_config_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_parse_phases():
    assert parse_phases("2b,1") == ("1", "2b")
    assert parse_phases(["phase2A"]) == ("2a",)
    with pytest.raises(ConfigError):
        parse_phases("1,3")
    with pytest.raises(ConfigError):
        parse_phases("1,1")
