"""Shipped twin weights: a warm-up exported as an asset loads back bit-identically instead of being recomputed,
and the package ships the assets of the current default recipe (regenerate with `brain3d twin-assets`)."""

import json

import torch

from brain3d.twin import assets
from brain3d.twin.pretrained import TwinRecipe, make_pretrained_twin


def _state(folder, part):
    model, _ = assets._load(folder, part)
    return model.state_dict()


def test_exported_warm_ups_load_back_identically(tmp_path):
    recipe = TwinRecipe.quick()
    a = make_pretrained_twin(tmp_path / "a", seed=3, image_size=(16, 32, 32), recipe=recipe,
                             assets=tmp_path / "store", export=True)
    assert len(list((tmp_path / "store").glob("*.safetensors"))) == 2
    b = make_pretrained_twin(tmp_path / "b", seed=3, image_size=(16, 32, 32), recipe=recipe, assets=tmp_path / "store")
    for part in ("vision", "language"):
        done = json.loads((b[part] / "brain3d_pretraining.json").read_text())
        assert done["loaded_from_asset"].startswith(part)
        sa, sb = _state(a[part], part), _state(b[part], part)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert (b[part] / "config.json").read_text() == (a[part] / "config.json").read_text()
    assert (b["language"] / "tokenizer.json").is_file()  # the folder keeps what the warm-up did not rewrite
    other = make_pretrained_twin(tmp_path / "c", seed=4, image_size=(16, 32, 32), recipe=recipe, assets=tmp_path / "store")
    assert "loaded_from_asset" not in json.loads((other["language"] / "brain3d_pretraining.json").read_text())


def test_the_package_ships_the_default_recipes_assets():
    from brain3d.train.config import load_config
    from brain3d.twin.pretrained import warmup_specs

    cfg = load_config("tiny")
    model = cfg.brain3d_config("tiny", "tiny")
    specs = warmup_specs(cfg.seed, model.image_size, model.kernel_depth, model.depth_stride, TwinRecipe())
    for part, spec in specs.items():
        assert assets.asset_path(part, spec).is_file(), f"no shipped {part} asset: run brain3d twin-assets"
    assert len(list(assets.ASSET_DIR.glob("*.safetensors"))) == len(specs)  # no stale assets
