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

The request and the parse of the reply are :mod:`workbench.pair_requests` (re-exported here).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from workbench.chat import ChatBackend
from workbench.datasets import AuditResult, ContrastPair, audit, read_pairs
from workbench.io import atomic_path, atomic_write_text
from workbench.pair_requests import build_messages, parse_reply
from workbench.values import get_value

__all__ = ["BatchRecord", "PairGenError", "PairGenResult", "build_messages", "generate_pairs", "parse_reply"]

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
