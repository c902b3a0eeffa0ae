import pytest

from brain3d.errors import ExplainError
from brain3d.explain.targets import build_target

REPORT = ("A lesion is seen in the Left frontoparietal region with surrounding edema. No necrosis. "
          "The left lateral ventricle is compressed.")


@pytest.fixture(scope="module")
def lang(tiny_models):
    from brain3d.model.backbones import load_tokenizer
    from brain3d.model.config import Brain3DConfig
    from brain3d.model.prompt import build_layout

    tok = load_tokenizer(tiny_models["language"])
    cfg = Brain3DConfig(vision_model="", language_model="")
    return tok, build_layout(tok, cfg.prompt, cfg.prompt_format)


def test_report_target_is_the_mean_log_probability_of_every_report_token(lang):
    tok, layout = lang
    t = build_target("report", REPORT, tok, layout, 256)
    assert t.texts == (REPORT,)
    ids = tok(REPORT, add_special_tokens=False)["input_ids"] + [layout.end]
    assert [x.token for x in t.terms] == ids and [x.index for x in t.terms] == list(range(len(ids)))
    assert sum(x.weight for x in t.terms) == pytest.approx(1.0)


def test_side_target_is_the_log_odds_of_the_written_side_against_its_mirror(lang):
    tok, layout = lang
    t = build_target("side", REPORT, tok, layout, 256)
    assert t.words == ("Left",)
    plus = "".join(tok.decode([x.token]) for x in t.terms if x.weight > 0).strip()
    minus = [x for x in t.terms if x.weight < 0]
    assert plus == "Left"
    text = t.texts[minus[0].text]
    assert "".join(tok.decode([x.token]) for x in minus).strip() == "Right"
    if minus[0].text == 1:  # the mirror word is spelled with other tokens: read from the mirrored report
        assert t.texts[1] == REPORT.replace("Left", "Right", 1) and text == t.texts[1]
    assert {x.weight for x in t.terms} == {1.0, -1.0}  # log p(whole word) = Σ log p of its tokens
    # position: the side word's first token sits right after "A lesion is seen in the " (its space a token here)
    prefix = tok("A lesion is seen in the ", add_special_tokens=False)["input_ids"]
    assert min(x.index for x in t.terms) == len(prefix)


def test_lobes_findings_and_phrases_pick_their_words(lang):
    tok, layout = lang
    assert build_target("lobes", REPORT, tok, layout, 256).words == ("frontoparietal",)
    assert build_target("findings", REPORT, tok, layout, 256).words == ("edema", "necrosis", "compressed")
    phrase = build_target("surrounding  EDEMA", REPORT, tok, layout, 256)
    assert phrase.kind == "phrase" and phrase.words == ("surrounding edema",)
    decoded = tok.decode([x.token for x in phrase.terms]).strip()
    assert decoded == "surrounding edema"


@pytest.mark.parametrize("target, report, message", [
    ("side", "No abnormality is seen.", "names no side"),
    ("side", "Bilateral frontal lesions.", "says bilateral without a left or right word"),
    ("lobes", "A lesion near the left ventricle.", "does not contain a lobe word"),
    ("enhancing rim", REPORT, "does not contain the phrase 'enhancing rim'"),
])
def test_a_target_missing_from_the_report_names_the_file(lang, target, report, message):
    tok, layout = lang
    with pytest.raises(ExplainError, match=rf"^scan\.nii\.gz: its report .*{message}"):
        build_target(target, report, tok, layout, 256, source="scan.nii.gz")


def test_words_past_the_models_report_window_are_refused(lang):
    tok, layout = lang
    with pytest.raises(ExplainError, match="after the first 3 report tokens"):
        build_target("findings", REPORT, tok, layout, 3, source="s.nii")
