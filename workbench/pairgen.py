"""Generate context-controlled contrast pairs for a value through a chat model.

Each request asks for a batch of pairs written under our context-control rules (same subject, scene,
grammar and length on both sides; only the value differs), returned as JSON lines
``{"positive": ..., "negative": ...}``. Replies are parsed leniently (numbering, bullets, code fences
and commentary are skipped; malformed lines are counted, never fatal). Each batch's new pairs are
deduplicated against everything accepted so far and audited with :func:`workbench.datasets.audit`;
a batch whose ``unique_share`` exceeds ``max_unique_share`` (the sides differ in topic, not only in the
value) is rejected whole. The accepted pairs are written atomically and validated by re-reading them
with :func:`workbench.datasets.read_pairs` before the file is moved into place.

Example:
    >>> from workbench.chat import ChatClient
    >>> result = generate_pairs("benevolence", 100, ChatClient("http://127.0.0.1:8000/v1", "my-model"),
    ...                         out="data/benevolence.jsonl")
    >>> result.audit.unique_share, len(result.rejected_batches)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from workbench.chat import ChatBackend
from workbench.datasets import AuditResult, ContrastPair, audit, read_pairs
from workbench.io import atomic_path, atomic_write_text
from workbench.values import get_value

__all__ = ["BatchRecord", "PairGenError", "PairGenResult", "build_messages", "generate_pairs", "parse_reply"]

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


class PairGenError(RuntimeError):
    """Pair generation could not produce the requested pairs; the message says why and what to change."""


@dataclass(frozen=True)
class BatchRecord:
    """What happened to one request: valid pairs parsed, lines skipped, duplicates, audit and verdict."""

    attempt: int
    parsed: int
    skipped_lines: int
    duplicates: int
    unique_share: float | None
    accepted: bool
    reason: str


@dataclass(frozen=True)
class PairGenResult:
    """The written file, its pairs, the per-batch log and the audit of the whole set."""

    value: str
    path: Path
    pairs: tuple[ContrastPair, ...]
    batches: tuple[BatchRecord, ...]
    audit: AuditResult

    @property
    def accepted_batches(self) -> tuple[BatchRecord, ...]:
        return tuple(b for b in self.batches if b.accepted)

    @property
    def rejected_batches(self) -> tuple[BatchRecord, ...]:
        return tuple(b for b in self.batches if not b.accepted)


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
    text = " ".join(text.split())
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
        return None
    return text if 0 < len(text) <= MAX_TEXT_CHARS else None


def _pair(obj: Any, value: str) -> ContrastPair | None:
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

    Accepts one JSON object a line (with or without numbering, bullets or a trailing comma), a JSON array
    of objects, and code fences (ignored). Objects need string ``positive`` and ``negative`` fields that
    differ, are at most ``MAX_TEXT_CHARS`` long and of similar length.

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
    pairs: list[ContrastPair] = []
    skipped = 0
    for line in reply.splitlines():
        line = line.strip()
        if not line or line.startswith("```") or line in ("[", "]"):
            continue
        line = _BULLET.sub("", line).rstrip(",")
        start, end = line.find("{"), line.rfind("}")
        pair = None
        if 0 <= start < end:
            try:
                pair = _pair(json.loads(line[start:end + 1]), name)
            except (ValueError, RecursionError):
                pair = None
        if pair is None:
            skipped += 1
        else:
            pairs.append(pair)
    return pairs, skipped


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def _jsonl(pairs: Sequence[ContrastPair]) -> str:
    return "".join(json.dumps({"value": p.value, "positive": p.positive, "negative": p.negative}, ensure_ascii=False)
                   + "\n" for p in pairs)


def generate_pairs(
    value: str,
    n: int,
    client: ChatBackend,
    batch_size: int = 10,
    max_unique_share: float = 0.4,
    *,
    out: str | Path,
    max_attempts: int | None = None,
    progress: bool = True,
) -> PairGenResult:
    """Ask ``client`` for batches of pairs until ``n`` pass the checks; write them to ``out`` (JSONL).

    ``client`` is a :class:`workbench.chat.ChatClient` (an OpenAI-compatible endpoint) or a
    :class:`workbench.chat.ResponderClient` (e.g. the local model through ``model_responder``). At most
    ``max_attempts`` requests are made (default: three per batch needed); if the pairs are still short,
    :class:`PairGenError` says how many were accepted and why batches failed, and the accepted pairs are
    saved beside ``out`` as ``<stem>.partial.jsonl``. Transport failures raise
    :class:`workbench.chat.ChatError`.

    Example:
        >>> from workbench.chat import ResponderClient
        >>> from workbench.evaluation.server import model_responder
        >>> generate_pairs("tradition", 20, ResponderClient(model_responder(model)), out="tradition.jsonl")
    """
    name = get_value(value).name
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of pairs, got {n!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if not (isinstance(max_unique_share, int | float) and 0.0 < max_unique_share <= 1.0):
        raise ValueError(f"max_unique_share must be in (0, 1], got {max_unique_share!r} (0.4 is a good start).")
    if max_attempts is None:
        max_attempts = max(3, 3 * math.ceil(n / batch_size))
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be a positive integer, got {max_attempts!r}.")
    if not callable(getattr(client, "complete", None)):
        raise TypeError(f"client is a {type(client).__name__}, which has no complete(messages, max_tokens) method. "
                        "Pass workbench.chat.ChatClient(url, model) or ResponderClient(model_responder(model)).")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"out={out} is a folder; pass the path of the .jsonl file to write.")

    accepted: list[ContrastPair] = []
    seen: set[str] = set()
    batches: list[BatchRecord] = []
    with tqdm(total=n, desc=f"pairs for {name}", unit="pair", disable=not progress) as bar:
        for attempt in range(max_attempts):
            if len(accepted) >= n:
                break
            k = min(batch_size, n - len(accepted))
            messages = build_messages(name, k, attempt, [p.positive for p in accepted])
            reply = client.complete(messages, max_tokens=120 * k + 200)
            parsed, skipped = parse_reply(reply, name)
            fresh, dups, batch_keys = [], 0, set()
            for pair in parsed:
                keys = {_key(pair.positive), _key(pair.negative)}
                if keys & (seen | batch_keys):
                    dups += 1
                    continue
                batch_keys |= keys
                fresh.append(pair)
            share = audit(fresh, dataset="generated").unique_share if fresh else None
            if not fresh:
                reason = "only duplicates" if parsed else "no valid pair in the reply"
            elif share is not None and share > max_unique_share:
                reason = f"audit: unique_share {share:.2f} > {max_unique_share:.2f} (the sides differ in topic)"
            else:
                reason = "accepted"
            ok = reason == "accepted"
            batches.append(BatchRecord(attempt + 1, len(parsed), skipped, dups, share, ok, reason))
            if ok:
                take = fresh[: n - len(accepted)]
                accepted.extend(take)
                seen |= batch_keys
                bar.update(len(take))
            bar.set_postfix(rejected=sum(not b.accepted for b in batches), refresh=False)

    if len(accepted) < n:
        partial = out.with_name(f"{out.stem}.partial.jsonl")
        if accepted:
            atomic_write_text(partial, _jsonl(accepted))
        rejected = [b.reason for b in batches if not b.accepted]
        why = {"by the audit": sum(r.startswith("audit") for r in rejected),
               "as only duplicates": rejected.count("only duplicates"),
               "without a valid pair": rejected.count("no valid pair in the reply")}
        raise PairGenError(
            f"Generated only {len(accepted)} of {n} pairs for {name!r} after {max_attempts} requests "
            f"({len(rejected)} batches rejected: {', '.join(f'{c} {w}' for w, c in why.items() if c) or 'none'}; "
            f"{sum(b.skipped_lines for b in batches)} malformed lines, {sum(b.duplicates for b in batches)} duplicates). "
            f"{'Accepted pairs saved to ' + str(partial) + '. ' if accepted else ''}"
            "Raise max_attempts, lower n, relax max_unique_share, or use a stronger model."
        )
    with atomic_path(out) as tmp:
        tmp.write_text(_jsonl(accepted), encoding="utf-8")
        back = read_pairs(tmp, value=name)  # validate before the file is moved into place
        if back != accepted:
            raise PairGenError(f"Re-reading the pairs for {out} gave different pairs; nothing was written.")
    return PairGenResult(name, out, tuple(accepted), tuple(batches), audit(accepted, dataset="generated"))

