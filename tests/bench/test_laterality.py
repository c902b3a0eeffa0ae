"""The laterality study's pure parts: configurations, flags, resume guard, the table (no training here:
`bench/laterality.py --quick` trains six tiny models and is run by hand)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from brain3d.errors import Brain3DError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lat():
    spec = importlib.util.spec_from_file_location("brain3d_bench_laterality", ROOT / "bench" / "laterality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it runs
    spec.loader.exec_module(mod)
    return mod


def test_configurations_cover_the_grid_reference_first(lat) -> None:
    confs = lat.configurations()
    assert [c.name for c in confs] == [
        "seq_pool-flip-on", "seq_pool-flip-off", "grid_pool-flip-on", "grid_pool-flip-off",
        "grid_attn-flip-on", "grid_attn-flip-off", "mirror_pool-flip-on", "mirror_pool-flip-off",
        "mirror_attn-flip-on", "mirror_attn-flip-off",
        "perceiver-flip-on", "perceiver-flip-off",
    ]
    assert confs[1].overrides == ["model.compressor=seq_pool", "data.flip=false"]
    picked = lat.configurations(["perceiver", "seq_pool", "perceiver"], [False])
    assert [c.name for c in picked] == ["seq_pool-flip-off", "perceiver-flip-off"]


def test_overrides_reach_the_training_config(lat) -> None:
    from brain3d.train.config import load_config

    cfg = load_config("tiny", overrides=lat.Configuration("perceiver", False).overrides)
    assert cfg.model["compressor"] == "perceiver" and cfg.data.flip is False


def test_bad_selections_are_user_errors(lat) -> None:
    assert lat.parse_flips("on, OFF") == [True, False]
    with pytest.raises(Brain3DError, match="on/off"):
        lat.parse_flips("maybe")
    with pytest.raises(Brain3DError, match="mean_pool"):
        lat.configurations(["mean_pool"])


def test_reuse_needs_a_finished_demo_folder(lat, tmp_path: Path) -> None:
    from brain3d.demo.pipeline import DemoConfig

    (tmp_path / "demo" / "cohort").mkdir(parents=True)
    (tmp_path / "demo" / "cohort" / "manifest.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(Brain3DError, match="not a finished demo folder"):
        lat.base_data(tmp_path / "study", DemoConfig.quick(), tmp_path / "demo", False, print)


def test_resumed_study_must_keep_its_settings(lat, tmp_path: Path) -> None:
    from brain3d.demo.pipeline import DemoConfig

    quick = lat.study_settings(DemoConfig.quick(), True, None)
    lat.check_settings(tmp_path, quick)
    lat.check_settings(tmp_path, quick)  # same settings (after a JSON round trip): fine
    with pytest.raises(Brain3DError, match="other settings"):
        lat.check_settings(tmp_path, lat.study_settings(DemoConfig(), False, None))


def _entry(mean: float) -> dict:
    return {"available": True, "mean": mean, "lo": mean - 0.1, "hi": mean + 0.05, "n": 20}


def test_markdown_table_has_every_column_with_ci(lat) -> None:
    configs = {
        name: {"name": name, "compressor": name.split("-")[0], "flip": True, "n_test": 40,
               "metrics": {k: _entry(v) for k, _ in lat.COLUMNS}}
        for name, v in (("seq_pool-flip-on", 0.5), ("grid_pool-flip-on", 0.9))
    }
    study = {"settings": {"quick": False}, "configurations": configs, "best_lat_f1_truth": lat.best(configs),
             "paired_lat_f1_truth": {"grid_pool-flip-on": {"versus": "seq_pool-flip-on", "diff": 0.4, "lo": 0.2,
                                                           "hi": 0.6, "p": 0.001}}}
    md = lat.markdown(json.loads(json.dumps(study)))
    for _, label in lat.COLUMNS:
        assert label in md
    assert "| grid_pool-flip-on | .900 [.800, .950] |" in md
    assert "| seq_pool-flip-on | .500 [.400, .550] |" in md
    assert ".400 [.200, .600] | 0.001 |" in md
    assert "n = 40" in md and "**grid_pool-flip-on**." in md
    configs["seq_pool-flip-on"]["metrics"]["lat_f1_truth"]["mean"] = 0.9
    assert lat.best(configs) == ["seq_pool-flip-on", "grid_pool-flip-on"]


def test_seeds_make_one_configuration_per_draw_and_a_table_over_them(lat):
    confs = lat.configurations(["mirror_attn"], [True], [1, 2, 3])
    assert [c.name for c in confs] == ["mirror_attn-flip-on-seed1", "mirror_attn-flip-on-seed2", "mirror_attn-flip-on-seed3"]
    assert {c.family for c in confs} == {"mirror_attn-flip-on"} and "seed=2" in confs[1].overrides
    results = {c.name: {"name": c.name, "family": c.family, "seed": c.seed,
                        "metrics": {"lat_f1_truth": {"mean": m}},
                        "findings": {"necrosis": {"balanced_accuracy": {"mean": 0.5 + m / 10}}}}
               for c, m in zip(confs, (0.8, 0.9, 0.7))}
    row = lat.over_seeds(results)["mirror_attn-flip-on"]
    assert row["lat_f1_truth"]["mean"] == pytest.approx(0.8) and row["lat_f1_truth"]["min"] == 0.7
    assert row["lat_f1_truth"]["max"] == 0.9 and row["lat_f1_truth"]["seeds"] == 3
    assert row["necrosis_balanced"]["max"] == pytest.approx(0.59)
    single = {confs[0].name: results[confs[0].name]}
    assert lat.over_seeds(single) == {}  # one draw is no spread
