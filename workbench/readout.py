"""Read positions: which text a probe is trained on, and where in it the residual is read.

Probes are fitted on the last token of each pair sentence, but at steering time P_V is read at the
last token of a chat-templated prompt (the start of the assistant's turn). The formats:

- ``bare``: the sentence alone, read at its last token;
- ``user-end``: the sentence as a user turn, read at its last token (before the end-of-turn token);
- ``assistant-start``: the sentence as a user turn followed by the assistant header, read at the
  last token of that header: the position steering reads on a prompt.

Example:
    >>> reading_texts(model, ["I shared my lunch."], "user-end")[0][-18:]
    'I shared my lunch.'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.chat_template import chat_texts, escape_special_tokens

__all__ = ["READ_FORMATS", "check_read_format", "reading_texts"]

READ_FORMATS = ("bare", "user-end", "assistant-start")


def check_read_format(fmt: str) -> str:
    if fmt not in READ_FORMATS:
        raise ValueError(f"Unknown read format {fmt!r}; use one of {', '.join(READ_FORMATS)}.")
    return fmt


def reading_texts(model: Any, texts: Sequence[str], fmt: str) -> list[str]:
    """The strings to extract so that the last token is the read position of ``fmt``."""
    check_read_format(fmt)
    texts = list(texts)
    if fmt == "bare":
        return texts
    chats = chat_texts(model, texts)
    if fmt == "assistant-start":
        return chats
    out = []
    for chat, text in zip(chats, texts, strict=True):
        body = escape_special_tokens(text, model.tokenizer)
        end = chat.rfind(body)
        if end < 0:
            raise ValueError(f"The chat template rewrote the user text {text[:40]!r}; the user-end format cannot find it.")
        out.append(chat[: end + len(body)])
    return out
