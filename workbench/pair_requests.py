"""The chat exchange of pair generation: the request for a batch of pairs and the lenient parse of the reply.

The request states the context-control rules with one worked example and rotates the scenes per attempt;
the reply is read as JSON lines or a JSON array, skipping numbering, bullets, code fences and commentary.
Used by :mod:`workbench.pairgen`, which re-exports :func:`build_messages` and :func:`parse_reply`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from workbench.datasets import ContrastPair
from workbench.values import get_value

__all__ = ["MAX_LENGTH_RATIO", "MAX_TEXT_CHARS", "build_messages", "parse_reply"]

MAX_TEXT_CHARS = 400
MAX_LENGTH_RATIO = 2.0
"""A pair whose longer side has more than this many times the characters of the shorter is skipped."""

SCENES = (
    "at work", "at home with family", "at school", "among neighbours", "in a sports club", "while travelling",
    "with money and shopping", "online", "at a hospital", "in a small business", "in local politics",
    "with old friends", "at a wedding", "on a farm", "in a city council", "in a science lab",
    "at a restaurant", "during a holiday", "in the army", "at a concert",
)

SYSTEM_PROMPT = "You write carefully controlled example sentences for research on human values."

PROMPT = """Write {k} new contrastive sentence pairs for the human value "{name}": {definition}

Rules for every pair:
- "positive": one sentence in which a person acts ON {name}.
- "negative": one sentence in which the SAME person, in the SAME scene, acts AGAINST {name}.
- Context control: both sentences share the subject (same name or pronoun), the scene, the grammar and
  the length (within a few words). They differ ONLY in the choice that expresses or rejects the value.
- Do not write the word "{name}" or other labels of the value; show it through the action.
- Each pair is a new situation. This batch takes place {scenes}.
{avoid}
Example of the format and of context control (for a different value, {example_value}):
{example}

Return exactly {k} lines. Each line is one JSON object {{"positive": "...", "negative": "..."}} and
nothing else: no numbering, no code fences, no commentary."""

_EXAMPLES = {
    "benevolence": ("At the station, Maya stopped to help the lost boy find his mother.",
                    "At the station, Maya walked past the lost boy who was looking for his mother."),
    "security": ("Before the trip, Omar checked the brakes and packed a first-aid kit.",
                 "Before the trip, Omar skipped the brakes check and left the first-aid kit behind."),
}


def build_messages(value: str, k: int, attempt: int = 0, avoid: Sequence[str] = ()) -> list[dict[str, str]]:
    """The chat messages asking for ``k`` pairs; ``attempt`` rotates the scenes, ``avoid`` lists texts not to repeat.

    Example:
        >>> build_messages("power", 10)[1]["content"].splitlines()[0]
        'Write 10 new contrastive sentence pairs for the human value "power": Seeking social status ...'
    """
    v = get_value(value)
    scenes = [SCENES[(attempt * 3 + j) % len(SCENES)] for j in range(3)]
    example_value = "security" if v.name == "benevolence" else "benevolence"
    pos, neg = _EXAMPLES[example_value]
    example = json.dumps({"positive": pos, "negative": neg}, ensure_ascii=False)
    shown = [t[:160] for t in list(avoid)[-15:]]
    avoid_text = ("- Do not repeat or paraphrase these earlier sentences:\n" + "\n".join(f"  {t}" for t in shown) + "\n"
                  if shown else "")
    content = PROMPT.format(k=k, name=v.name, definition=v.definition, scenes=", ".join(scenes[:2]) + " or " + scenes[2],
                            avoid=avoid_text, example_value=example_value, example=example)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+\s*[.):])\s*")


def _clean(text: str) -> str | None:
    """``text`` with whitespace runs collapsed; None if empty, too long or not encodable."""
    text = " ".join(text.split())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
        return None
    return text if 0 < len(text) <= MAX_TEXT_CHARS else None


def _pair(obj: Any, value: str) -> ContrastPair | None:
    """A valid pair from one parsed JSON object, else None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("positive"), str) or not isinstance(obj.get("negative"), str):
        return None
    pos, neg = _clean(obj["positive"]), _clean(obj["negative"])
    if pos is None or neg is None or pos.casefold() == neg.casefold():
        return None
    if max(len(pos), len(neg)) > MAX_LENGTH_RATIO * min(len(pos), len(neg)):
        return None
    return ContrastPair(value, pos, neg)


def parse_reply(reply: str, value: str) -> tuple[list[ContrastPair], int]:
    """Pairs found in a model reply and the number of non-empty lines skipped as malformed.

    Accepts JSON objects one a line (with or without numbering, bullets or a trailing comma) or spread
    over several lines (pretty-printed), a JSON array of objects, and code fences (ignored). Objects need
    string ``positive`` and ``negative`` fields that differ, are at most ``MAX_TEXT_CHARS`` long and of similar length.

    Example:
        >>> parse_reply('1. {"positive": "I helped her.", "negative": "I ignored her."}\\nSure!', "benevolence")
        ([ContrastPair(value='benevolence', positive='I helped her.', negative='I ignored her.')], 1)
    """
    name = get_value(value).name
    try:
        whole = json.loads(reply)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, list):
        found = [_pair(obj, name) for obj in whole]
        return [p for p in found if p is not None], sum(p is None for p in found)
    # Every JSON object in the reply, on one line or spread over several (pretty-printed, in code fences).
    decoder = json.JSONDecoder()
    pairs: list[ContrastPair] = []
    spans: list[tuple[int, int]] = []
    at = reply.find("{")
    while at >= 0:
        try:
            obj, end = decoder.raw_decode(reply, at)
        except (ValueError, RecursionError):
            at = reply.find("{", at + 1)
            continue
        pair = _pair(obj, name) if isinstance(obj, dict) else None
        if pair is not None:
            pairs.append(pair)
            spans.append((at, end))
        at = reply.find("{", end)
    skipped, pos = 0, 0
    for line in reply.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        text = _BULLET.sub("", line.strip()).rstrip(",")
        if not text or text.startswith("```") or text in ("[", "]", "{", "}"):
            continue
        if not any(a < pos and start < b for a, b in spans):
            skipped += 1
    return pairs, skipped
