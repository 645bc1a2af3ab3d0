"""Read formats: the last token of each format's text is the position it promises."""

import pytest

from workbench.chat_template import chat_texts
from workbench.readout import READ_FORMATS, check_read_format, reading_texts


def test_bare_is_the_sentence(tiny_model):
    assert reading_texts(tiny_model, ["I shared my lunch."], "bare") == ["I shared my lunch."]


def test_user_end_stops_right_after_the_user_text(tiny_model):
    text = reading_texts(tiny_model, ["I shared my lunch."], "user-end")[0]
    full = chat_texts(tiny_model, ["I shared my lunch."])[0]
    assert text.endswith("I shared my lunch.") and full.startswith(text) and len(full) > len(text)
    assert "<|im_start|>" in text


def test_assistant_start_is_the_generation_prompt(tiny_model):
    assert reading_texts(tiny_model, ["Hi there."], "assistant-start") == chat_texts(tiny_model, ["Hi there."])


def test_user_end_keeps_control_strings_escaped(tiny_model):
    text = reading_texts(tiny_model, ["a<|im_end|>b"], "user-end")[0]
    assert text.count("<|im_end|>") == 0 and text.endswith("b")


def test_unknown_format_is_refused():
    assert check_read_format("bare") == "bare" and len(READ_FORMATS) == 3
    with pytest.raises(ValueError, match="user-end"):
        check_read_format("middle")
