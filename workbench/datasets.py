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

Reading text files safely is :mod:`workbench.textfiles`, the audit :mod:`workbench.pair_audit`; both are
re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from workbench.constants import DATASETS
from workbench.pair_audit import AuditResult, audit
from workbench.textfiles import DataError, check_text, parse_json_line, read_text_lines
from workbench.values import is_known_value, value_name

__all__ = [
    "DATASETS",
    "AuditResult",
    "ContrastPair",
    "DataError",
    "as_pairs",
    "audit",
    "check_text",
    "data_root",
    "load_pairs",
    "parse_json_line",
    "read_pairs",
    "read_text_lines",
    "split_pairs",
]


@dataclass(frozen=True)
class ContrastPair:
    """One contrastive pair: ``positive`` acts on ``value``, ``negative`` acts against it."""

    value: str
    positive: str
    negative: str


def data_root() -> Path:
    """Folder of the data shipped with the package."""
    return Path(str(resources.files("workbench") / "data"))


PAIR_SUFFIXES = (".jsonl", ".csv", ".json")


def _folded(text: str) -> str:
    """``text`` with case and runs of whitespace ignored (for telling whether two sides really differ)."""
    return " ".join(text.split()).casefold()


def _check_pairs(records: Iterable[tuple[str, object]], expected: str | None, source: str) -> list[ContrastPair]:
    """Validate ``(where, record)`` items (``where`` such as ``file.jsonl:3``) into pairs, in order."""
    pairs: list[ContrastPair] = []
    seen: dict[str, str] = {}

    def fail(where: str, problem: str, fix: str) -> DataError:
        return DataError(f"{where}: {problem}. {fix}")

    for where, obj in records:
        if not isinstance(obj, dict):
            raise fail(where, "line is not a JSON object", 'Write {"value": ..., "positive": ..., "negative": ...}.')
        obj = dict(obj)
        if obj.get("value") is None and expected is not None:
            obj["value"] = expected
        for key in ("value", "positive", "negative"):
            if not isinstance(obj.get(key), str):
                fix = "Add it as a string." if key != "value" else "Add it, or pass value=... (--value NAME)."
                raise fail(where, f"field {key!r} is missing or not a string", fix)
            try:
                obj[key].encode("utf-8")
            except UnicodeEncodeError:
                raise fail(where, f"field {key!r} holds an invalid Unicode escape (a lone surrogate such as \\ud800)",
                           "Fix the escape sequence.") from None
        if len(obj["value"]) > 100:
            raise fail(where, f"value name {obj['value'][:40]!r}... is not a known value", "Fix the value name.")
        try:
            name = value_name(obj["value"])
        except ValueError as err:
            raise fail(where, str(err).rstrip("."), "Fix the value name.") from None
        if expected is not None and name != expected:
            raise fail(where, f"value {name!r} in a file for {expected!r}", "Move the line to its own file.")
        pos, neg = obj["positive"].strip(), obj["negative"].strip()
        if not pos or not neg:
            raise fail(where, "empty text", "Both sides need a sentence.")
        if pos == neg:
            raise fail(where, "positive and negative are identical", "The sides must differ in the value.")
        if _folded(pos) == _folded(neg):
            raise fail(where, "positive and negative differ only in letter case or spacing",
                       "The sides must differ in the value, not in capitals or blanks.")
        for text in (pos, neg):
            if text in seen:
                raise fail(where, f"duplicate text (first at {seen[text]}): {text[:60]!r}", "Remove or rewrite one.")
            seen[text] = where
        pairs.append(ContrastPair(name, pos, neg))
    if not pairs:
        raise DataError(f"{source}: no pairs found. The file must hold one JSON pair a line.")
    return pairs


def _csv_records(path: Path) -> list[tuple[str, object]]:
    import csv
    import io

    # strict: an unterminated quote is an error, not the rest of the file read as one field
    reader = csv.DictReader(io.StringIO("\n".join(read_text_lines(path, "Pair file")), newline=""), strict=True)
    try:
        columns = reader.fieldnames or []
        missing = [c for c in ("positive", "negative") if c not in columns]
        if missing:
            raise DataError(f"{path}: no {' or '.join(repr(c) for c in missing)} column (columns: {columns[:10]}). "
                            "Name the columns positive and negative (and optionally value).")
        return [(f"{path}:{reader.line_num}", {k: v for k, v in row.items() if k in ("value", "positive", "negative")})
                for row in reader if any((v or "").strip() for v in row.values() if isinstance(v, str))]
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise DataError(f"{path}: a quoted field after line {reader.line_num} is never closed (unterminated quote). "
                            "Close the quote, or double quotes inside a quoted field (\"\").") from None
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err}). Quote fields that hold commas or quotes.") from None


def _json_records(path: Path) -> list[tuple[str, object]]:
    text = "\n".join(read_text_lines(path, "Pair file"))
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise DataError(f"{path}: malformed JSON ({str(err)[:120]}). A .json pair file holds one list of "
                        '{"positive": ..., "negative": ...} objects; use .jsonl for one object a line.') from None
    if isinstance(data, dict) and isinstance(data.get("pairs"), list):
        data = data["pairs"]
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json pair file must hold a list of objects, not a JSON {type(data).__name__}.")
    return [(f"{path}[{i}]", obj) for i, obj in enumerate(data)]


def _jsonl_records(path: Path) -> Iterator[tuple[str, object]]:
    for n, raw in enumerate(read_text_lines(path, "Pair file"), 1):
        if raw.strip():
            yield f"{path}:{n}", parse_json_line(path, n, raw)


def read_pairs(path: str | Path, value: str | None = None) -> list[ContrastPair]:
    """Read and validate a pair file: JSONL (as ``workbench generate-pairs`` writes), CSV or JSON.

    JSONL holds one ``{"value": ..., "positive": ..., "negative": ...}`` object a line; CSV has
    ``positive`` and ``negative`` columns; ``.json`` holds a list of such objects. The ``value`` field
    may be left out when ``value`` is given; it may name one of the 10 values or a concept of your own
    (:func:`workbench.values.value_name`).

    Raises :class:`DataError` naming file and line for: malformed JSON/CSV, missing or non-string
    fields, empty texts, identical sides, mistyped or mismatching value names, duplicate texts,
    binary or non-UTF-8 content and overlong lines; ``FileNotFoundError`` for a missing file.

    Example:
        >>> pairs = read_pairs("honesty.csv", value="honesty")
    """
    path = Path(path)
    expected = value_name(value) if value is not None else None
    suffix = path.suffix.lower()
    records = _csv_records(path) if suffix == ".csv" else _json_records(path) if suffix == ".json" else _jsonl_records(path)
    return _check_pairs(records, expected, str(path))


def as_pairs(obj: object, value: str | None = None) -> list[ContrastPair]:
    """Pairs from whatever you hold: ``(positive, negative)`` tuples, dicts (HF ``datasets`` rows),
    a pandas DataFrame with ``positive``/``negative`` columns, ContrastPairs, or a file path.

    ``value`` names the concept (one of the 10 values or your own, e.g. ``"honesty"``); it is needed
    unless every item carries its own ``value``. Validation is that of :func:`read_pairs`.

    Example:
        >>> as_pairs([("I told her the truth.", "I told her a lie.")], value="honesty")
        [ContrastPair(value='honesty', positive='I told her the truth.', negative='I told her a lie.')]
    """
    if isinstance(obj, str | Path):
        return read_pairs(obj, value=value)
    expected = value_name(value) if value is not None else None
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a pandas DataFrame
        missing = [c for c in ("positive", "negative") if c not in obj.columns]
        if missing:
            raise DataError(f"DataFrame: no {' or '.join(repr(c) for c in missing)} column "
                            f"(columns: {list(obj.columns)[:10]}). Name the columns positive and negative.")
        obj = obj.to_dict(orient="records")
    elif hasattr(obj, "column_names") and hasattr(obj, "to_list"):  # an HF datasets.Dataset
        obj = obj.to_list()
    if isinstance(obj, ContrastPair) or isinstance(obj, dict) or not isinstance(obj, Iterable):
        raise DataError(f"as_pairs: expected a list of pairs (tuples, dicts or ContrastPairs), a DataFrame or a "
                        f"file path, got a {type(obj).__name__}.")

    def record(i: int, item: object) -> object:
        if isinstance(item, ContrastPair):
            return {"value": item.value, "positive": item.positive, "negative": item.negative}
        if isinstance(item, tuple | list) and len(item) == 2:
            return {"value": expected, "positive": item[0], "negative": item[1]}
        if isinstance(item, dict):
            return item
        if hasattr(item, "keys") and hasattr(item, "__getitem__"):  # a Mapping-like row
            return {k: item[k] for k in item.keys()}
        shape = f"a {type(item).__name__} of {len(item)} items" if isinstance(item, tuple | list) else f"a {type(item).__name__}"
        raise DataError("pairs must be ContrastPair objects, (positive, negative) tuples or dicts with 'positive' and "
                        f"'negative'; item {i} is {shape}.")

    items = [(f"pairs[{i}]", record(i, item)) for i, item in enumerate(obj)]
    return _check_pairs(items, expected, "pairs")


def load_pairs(value: str, dataset: str = "controlled", root: str | Path | None = None) -> list[ContrastPair]:
    """Load the pairs for ``value`` from the shipped data (or from ``root/<dataset>/<value>.jsonl``)."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; use one of {DATASETS}.")
    name = value_name(value)
    if root is None and not is_known_value(name):
        raise ValueError(f"No shipped pairs for {name!r}: it is not one of the 10 values. Bring your own pairs: "
                         f"as_pairs(...) / read_pairs(FILE), or `workbench probe --pairs FILE --value {name}`.")
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
    import numpy as np  # here, not at the top: the command line imports this module for its --help

    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = max(1, round(len(pairs) * test_fraction))
    test_idx = set(order[:n_test].tolist())
    train = [p for i, p in enumerate(pairs) if i not in test_idx]
    test = [p for i, p in enumerate(pairs) if i in test_idx]
    return train, test

