"""The base models' published configurations (MedSigLIP-448, MedGemma-1.5-4B-IT), shipped as package data.

They are what a user's downloaded `config.json` holds (FACTS.md; transformers 4.x spelling: `rope_scaling`,
`sliding_window_pattern`), so that `brain3d plan` answers without a base-model folder and the real-width
stand-ins (`brain3d.twin.paper`) are written from the same numbers. Code that has a folder reads the folder's
own config.json instead (`backbones.read_model_config`); nothing here is a hard-coded width.
"""

from __future__ import annotations

import copy
import json
from importlib import resources

from brain3d.errors import ConfigError

VISION = "medsiglip-448"
LANGUAGE = "medgemma-1.5-4b-it"
PUBLISHED = (VISION, LANGUAGE)
GLOBAL_EVERY = 6  # Gemma 3: every 6th decoder layer attends globally, the others in a sliding window


def published_config(name: str, file: str = "config") -> dict:
    """The published `file`.json of model `name` (one of PUBLISHED; file 'config' or, for the language model,
    'generation_config') as a fresh dict."""
    if name not in PUBLISHED:
        raise ConfigError(f"no published config named {name!r}; known: {', '.join(PUBLISHED)}")
    suffix = "" if file == "config" else f".{file}"
    res = resources.files("brain3d.configs").joinpath(f"base_models/{name}{suffix}.json")
    if not res.is_file():
        raise ConfigError(f"no published {file}.json for {name}")
    return json.loads(res.read_text(encoding="utf-8"))


def layer_types(num_layers: int, every: int = GLOBAL_EVERY) -> list[str]:
    """Gemma 3's attention pattern: layer i is global when (i + 1) is a multiple of `every`."""
    return ["full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(num_layers)]


def at_depth(config: dict, layers: int | None) -> dict:
    """A copy of a published SigLIP or Gemma-3 config with every tower cut to `layers` layers (None: as
    published). A Gemma-3 text model of two or more layers keeps a global-attention layer last, so that both
    attention kinds run (the published pattern has its first global layer at depth 6)."""
    cfg = copy.deepcopy(config)
    if layers is None:
        return cfg
    if layers < 1:
        raise ConfigError(f"a stand-in needs at least one layer per tower, not {layers}")
    for key in ("vision_config", "text_config"):
        sub = cfg.get(key)
        if sub is None:
            continue
        sub["num_hidden_layers"] = layers
        if sub.get("model_type") == "gemma3_text":
            types = layer_types(layers, int(sub.pop("sliding_window_pattern", GLOBAL_EVERY)))
            if layers >= 2:
                types[-1] = "full_attention"
            sub["layer_types"] = types
    return cfg
