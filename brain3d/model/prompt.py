"""Where the K soft tokens, the prompt and the report sit in the LM's input sequence.

Every sequence is  [before ids][K vision tokens][after ids][report ids][end id]:
* 'reference' (the reference code): before = [], after = bos + prompt; the report ends with <eos>.
* 'chat': Gemma's chat template with the vision tokens inside the user turn:
  `<bos><start_of_turn>user\n<start_of_image>[vision]<end_of_image>\n{prompt}<end_of_turn>\n<start_of_turn>model\n`
  and the report ends with <end_of_turn> (image delimiters only when the vocabulary has them).
Only report ids and the end id are ever trained on (labels -100 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

from brain3d.errors import ConfigError

_VISION_SLOT = "\u2063BRAIN3D_VISION\u2063"  # split point in the rendered chat text; never tokenised


@dataclass(frozen=True)
class PromptLayout:
    before: list[int]  # ids before the vision tokens
    after: list[int]  # ids between the vision tokens and the report
    end: int  # id that closes a report (trained on, and a stop id)
    stop: list[int]  # ids that end generation


def build_layout(tokenizer, prompt: str, prompt_format: str) -> PromptLayout:
    stop = _stop_ids(tokenizer)
    if prompt_format == "reference":
        text = prompt if not prompt or prompt[-1].isspace() else prompt + "\n"  # keep the report off the prompt
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return PromptLayout([], bos + _ids(tokenizer, text), tokenizer.eos_token_id, stop)
    if prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("prompt_format 'chat' needs a tokenizer with a chat template; this one has none")
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{_VISION_SLOT}\n{prompt}"}], tokenize=False, add_generation_prompt=True
        )
        if rendered.count(_VISION_SLOT) != 1:
            raise ConfigError("the tokenizer's chat template does not keep the user message verbatim")
        before_text, after_text = rendered.split(_VISION_SLOT)
        boi, eoi = _token_id(tokenizer, "<start_of_image>"), _token_id(tokenizer, "<end_of_image>")
        before = _ids(tokenizer, before_text) + ([boi] if boi is not None and eoi is not None else [])
        after = ([eoi] if boi is not None and eoi is not None else []) + _ids(tokenizer, after_text)
        end = _token_id(tokenizer, "<end_of_turn>")
        return PromptLayout(before, after, end if end is not None else tokenizer.eos_token_id, stop)
    raise ConfigError(f"prompt_format {prompt_format!r} is not one of reference, chat")


def report_ids(tokenizer, reports: list[str], layout: PromptLayout, max_tokens: int) -> list[list[int]]:
    """Token ids of each report followed by the end id, truncated to `max_tokens` (end id dropped then)."""
    encoded = tokenizer(list(reports), add_special_tokens=False)["input_ids"]
    out = []
    for ids in encoded:
        ids = list(ids) + [layout.end]
        out.append(ids[:max_tokens])
    return out


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _token_id(tokenizer, token: str) -> int | None:
    tid = tokenizer.convert_tokens_to_ids(token)
    return None if tid is None or tid == tokenizer.unk_token_id else int(tid)


def _stop_ids(tokenizer) -> list[int]:
    ids = [tokenizer.eos_token_id, _token_id(tokenizer, "<end_of_turn>")]
    return sorted({int(i) for i in ids if i is not None})
