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


def test_language_folder_has_medgemma_processor(tiny_models):
    """The language folder loads as MedGemma's does: a Gemma3Processor whose image size and tokens per image
    match the model's config, and Gemma 3's chat template (images in content lists, Brain3D's text unchanged)."""
    from transformers import AutoProcessor

    cfg = json.loads((tiny_models["language"] / "config.json").read_text(encoding="utf-8"))
    proc = AutoProcessor.from_pretrained(tiny_models["language"])
    assert type(proc).__name__ == "Gemma3Processor"
    assert proc.image_seq_length == cfg["mm_tokens_per_image"]
    side = cfg["vision_config"]["image_size"]
    assert proc.image_processor.size == {"height": side, "width": side}
    assert proc.tokenizer.image_token_id == cfg["image_token_index"]
    assert proc.tokenizer.convert_tokens_to_ids(proc.tokenizer.boi_token) == cfg["boi_token_index"]
    text = proc.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
    content = [{"type": "image"}, {"type": "text", "text": "SLICE 1"}, {"type": "text", "text": "Report"}]
    text = proc.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    assert text == "<bos><start_of_turn>user\n<start_of_image>SLICE 1Report<end_of_turn>\n<start_of_turn>model\n"


def test_language_warm_up_keeps_the_processor_files(tiny_models, tmp_path):
    import shutil

    from transformers import AutoProcessor

    from brain3d.twin.lm_pretrain import pretrain_language_model

    folder = tmp_path / "language"
    shutil.copytree(tiny_models["language"], folder)
    before = {p.name for p in folder.iterdir()}
    pretrain_language_model(folder, ["No abnormality is seen."] * 4, steps=1, batch_size=2)
    assert {p.name for p in folder.iterdir()} == before | {"brain3d_pretraining.json"}
    assert AutoProcessor.from_pretrained(folder).image_seq_length == 16
