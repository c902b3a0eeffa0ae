"""Brain3DConfig: round trip, parity preset, one-sentence errors."""

import json

import pytest

from brain3d.errors import ConfigError
from brain3d.model.config import REFERENCE_PROMPT, Brain3DConfig, LoraConfig


def test_round_trip_through_json():
    cfg = Brain3DConfig("v", "l", sequences=["flair", "t1"], pool_grid=(2, 4, 4), lora=LoraConfig(r=8))
    again = Brain3DConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.in_channels == 2 and again.lora.targets == ("q_proj", "k_proj", "v_proj", "o_proj")


def test_defaults_and_parity_preset():
    cfg = Brain3DConfig("v", "l")
    assert (cfg.kernel_depth, cfg.depth_stride, cfg.depth_padding, cfg.compressor, cfg.num_tokens) == (2, 2, 0, "grid_pool", 32)
    par = Brain3DConfig.parity("v", "l")
    assert (par.kernel_depth, par.depth_stride, par.depth_padding) == (2, 1, 1)
    assert (par.compressor, par.pos_embed, par.soft_token_scale, par.prompt) == ("seq_pool", "reference", "none", REFERENCE_PROMPT)
    assert Brain3DConfig.parity("v", "l", num_tokens=16).num_tokens == 16


@pytest.mark.parametrize("bad", [
    dict(compressor="mean"), dict(inflate_init="edge"), dict(pos_embed="sin"), dict(prompt_format="raw"),
    dict(sequences=[]), dict(image_size=(64, 128)), dict(depth_stride=0), dict(num_tokens=32, pool_grid=(2, 2, 2)),
])
def test_invalid_settings_raise_config_error(bad):
    with pytest.raises(ConfigError):
        Brain3DConfig("v", "l", **bad)


def test_unknown_keys_are_named():
    d = Brain3DConfig("v", "l").to_dict()
    d["kernel_size"] = 3
    with pytest.raises(ConfigError, match="kernel_size"):
        Brain3DConfig.from_dict(d)
