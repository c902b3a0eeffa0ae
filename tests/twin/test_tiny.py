"""The tiny twin is deterministic, written by the CLI, and has the real models' classes."""

import json

from brain3d.cli import main


def test_cli_writes_the_same_bytes_as_the_fixture(tiny_models, tmp_path):
    assert main(["tiny-models", str(tmp_path / "tiny")]) == 0
    for part in ("vision", "language"):
        ours, theirs = tiny_models[part], tmp_path / "tiny" / part
        names = sorted(p.name for p in ours.iterdir())
        assert names == sorted(p.name for p in theirs.iterdir())
        for name in names:
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), f"{part}/{name} differs"
    assert json.loads((tiny_models["vision"] / "config.json").read_text(encoding="utf-8"))["architectures"] == ["SiglipModel"]
    lm_cfg = json.loads((tiny_models["language"] / "config.json").read_text(encoding="utf-8"))
    assert lm_cfg["architectures"] == ["Gemma3ForConditionalGeneration"]
    assert lm_cfg["vision_config"]["model_type"] == "siglip_vision_model"


def test_tokenizer_covers_report_text(tiny_models):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["language"])
    text = "There is a tumor involving the left frontal lobe. No necrosis is seen."
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(ids) < len(text.split()) * 2  # words, not characters
