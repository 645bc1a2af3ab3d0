"""Contrastive value pairs: loading with validation, seeded splits, and the context-control audit.

Shipped pair files live in ``workbench/data/pairs/<dataset>/<value>.jsonl`` with one object a line:
``{"value": "power", "positive": "...", "negative": "..."}``. ``dataset`` is ``controlled``
(both sides share scene, grammar and length) or ``naive`` (sides written independently).

Example:
    >>> from workbench.datasets import load_pairs, audit
    >>> pairs = load_pairs("power")
    >>> train, test = split_pairs(pairs, test_fraction=0.25, seed=0)
    >>> audit(pairs).unique_share   # doctest: +SKIP
    0.3
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from workbench.values import get_value

__all__ = [
    "DATASETS",
    "AuditResult",
    "ContrastPair",
    "DataError",
    "audit",
    "check_text",
    "data_root",
    "load_pairs",
    "parse_json_line",
    "read_pairs",
    "read_text_lines",
    "split_pairs",
]

DATASETS = ("controlled", "naive")


class DataError(ValueError):
    """A data file is malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ContrastPair:
    """One contrastive pair: ``positive`` acts on ``value``, ``negative`` acts against it."""

    value: str
    positive: str
    negative: str


@dataclass(frozen=True)
class AuditResult:
    """Context-control audit of one pair set.

    ``unique_share`` is the share of each side's ``top_k`` most frequent content words that never
    occur on the other side (averaged over both sides): high means the sides differ in topic, not
    only in the value.
    """

    value: str
    dataset: str
    unique_share: float
    positive_only: tuple[str, ...]
    negative_only: tuple[str, ...]
    n_pairs: int


def data_root() -> Path:
    """Folder of the data shipped with the package."""
    return Path(str(resources.files("workbench") / "data"))


def _fail(path: Path, line: int, problem: str, fix: str) -> DataError:
    return DataError(f"{path}:{line}: {problem}. {fix}")


MAX_LINE_CHARS = 1_000_000


def read_text_lines(path: str | Path, what: str = "Data file") -> list[str]:
    """The lines of a UTF-8 text file (a leading BOM and any line-ending style accepted).

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` naming the file and line for
    a folder, binary content (NUL bytes), bytes that are not UTF-8, and lines over ``MAX_LINE_CHARS``.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file. Pass the path of the {what.lower()} itself.")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist.")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _fail(path, data.count(b"\n", 0, nul) + 1, "NUL byte: this is a binary file, not UTF-8 text",
                    f"Pass a text file (a {what.lower()} written as UTF-8).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(path, data.count(b"\n", 0, err.start) + 1,
                    f"not valid UTF-8 (byte {data[err.start:err.start + 1]!r} at offset {err.start})",
                    "Save the file as UTF-8 text.") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise _fail(path, n, f"line is {len(line):,} characters long (the limit is {MAX_LINE_CHARS:,})",
                        "The file has probably lost its line breaks or is not a line-based text file.")
    return lines


def parse_json_line(path: Path, n: int, line: str) -> object:
    """``json.loads`` of one JSONL line, every failure turned into a :class:`DataError` naming file and line."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise _fail(path, n, f"malformed JSON ({err.msg} at column {err.colno})", "Each line must be one JSON object.") from None
    except (ValueError, RecursionError) as err:  # e.g. 5000-digit numbers, thousands of nested brackets
        raise _fail(path, n, f"malformed JSON ({str(err)[:120]})", "Each line must be one JSON object.") from None


def check_text(path: Path, n: int, text: str, field: str) -> str:
    """Refuse text that no tokenizer can encode (lone UTF-16 surrogates from ``\\ud800``-style escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, n, f"field {field!r} holds an invalid Unicode escape (a lone surrogate such as \\ud800)",
                    "Fix the escape sequence.") from None
    return text


def read_pairs(path: str | Path, value: str | None = None) -> list[ContrastPair]:
    """Read and validate a pair file (JSONL).

    Raises :class:`DataError` naming file and line for: malformed JSON, missing or non-string
    fields, empty texts, identical sides, unknown or mismatching value names, duplicate texts,
    binary or non-UTF-8 content and overlong lines; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    expected = get_value(value).name if value is not None else None
    pairs: list[ContrastPair] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(read_text_lines(path, "Pair file"), 1):
        if not raw.strip():
            continue
        obj = parse_json_line(path, n, raw)
        if not isinstance(obj, dict):
            raise _fail(path, n, "line is not a JSON object", 'Write {"value": ..., "positive": ..., "negative": ...}.')
        for key in ("value", "positive", "negative"):
            if not isinstance(obj.get(key), str):
                raise _fail(path, n, f"field {key!r} is missing or not a string", "Add it as a string.")
            check_text(path, n, obj[key], key)
        if len(obj["value"]) > 100:
            raise _fail(path, n, f"value name {obj['value'][:40]!r}... is not a known value", "Fix the value name.")
        try:
            name = get_value(obj["value"]).name
        except ValueError as err:
            raise _fail(path, n, str(err).rstrip("."), "Fix the value name.") from None
        if expected is not None and name != expected:
            raise _fail(path, n, f"value {name!r} in a file for {expected!r}", "Move the line to its own file.")
        pos, neg = obj["positive"].strip(), obj["negative"].strip()
        if not pos or not neg:
            raise _fail(path, n, "empty text", "Both sides need a sentence.")
        if pos == neg:
            raise _fail(path, n, "positive and negative are identical", "The sides must differ in the value.")
        for text in (pos, neg):
            if text in seen:
                raise _fail(path, n, f"duplicate text (first on line {seen[text]}): {text[:60]!r}", "Remove or rewrite one.")
            seen[text] = n
        pairs.append(ContrastPair(name, pos, neg))
    if not pairs:
        raise DataError(f"{path}: no pairs found. The file must hold one JSON pair a line.")
    return pairs


def load_pairs(value: str, dataset: str = "controlled", root: str | Path | None = None) -> list[ContrastPair]:
    """Load the pairs for ``value`` from the shipped data (or from ``root/<dataset>/<value>.jsonl``)."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; use one of {DATASETS}.")
    name = get_value(value).name
    base = Path(root) if root is not None else data_root() / "pairs"
    return read_pairs(base / dataset / f"{name}.jsonl", value=name)


def split_pairs(
    pairs: Sequence[ContrastPair], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """Seeded train/test split by pair, so both sides of a pair land on the same side."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    if len(pairs) < 4:
        raise ValueError(f"Need at least 4 pairs to split into train and test, got {len(pairs)}. Add pairs.")
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = max(1, round(len(pairs) * test_fraction))
    test_idx = set(order[:n_test].tolist())
    train = [p for i, p in enumerate(pairs) if i not in test_idx]
    test = [p for i, p in enumerate(pairs) if i in test_idx]
    return train, test


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _content_words(texts: Sequence[str]) -> Counter[str]:
    words = (w for t in texts for w in _WORD.findall(t.lower()))
    return Counter(w for w in words if len(w) > 2 and w not in ENGLISH_STOP_WORDS and "'" not in w)


def audit(pairs: Sequence[ContrastPair], dataset: str = "controlled", top_k: int = 25) -> AuditResult:
    """Context-control audit: share of each side's top-``top_k`` content words absent from the other side."""
    if not pairs:
        raise ValueError("Cannot audit an empty pair set.")
    pos = _content_words([p.positive for p in pairs])
    neg = _content_words([p.negative for p in pairs])
    pos_top = [w for w, _ in pos.most_common(top_k)]
    neg_top = [w for w, _ in neg.most_common(top_k)]
    pos_only = tuple(w for w in pos_top if w not in neg)
    neg_only = tuple(w for w in neg_top if w not in pos)
    share = (len(pos_only) + len(neg_only)) / max(1, len(pos_top) + len(neg_top))
    return AuditResult(pairs[0].value, dataset, share, pos_only, neg_only, len(pairs))
