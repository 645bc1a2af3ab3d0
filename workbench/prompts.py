"""Prompt sets: the shipped value-eliciting and unrelated prompts, and user prompt files.

Example:
    >>> from workbench.prompts import load_value_prompts, read_prompts
    >>> train, test = load_value_prompts("power")
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from workbench.datasets import DataError, check_text, data_root, parse_json_line, read_text_lines
from workbench.values import get_value, is_known_value, value_name

__all__ = ["load_unrelated_prompts", "load_value_prompts", "read_prompts", "read_split_prompts"]


def read_split_prompts(path: str | Path) -> tuple[list[str], list[str]]:
    """Read a prompt file in the shipped format: JSONL objects ``{"text": ..., "split": "train"|"test"}``.

    ``split`` defaults to ``train``. Raises :class:`DataError` naming file and line for any malformed line
    and for a file without prompts; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    train: list[str] = []
    test: list[str] = []
    for n, line in enumerate(read_text_lines(path, "Prompt file"), 1):
        if not line.strip():
            continue
        obj = parse_json_line(path, n, line)
        if not isinstance(obj, dict):
            raise DataError(f'{path}:{n}: line is not a JSON object. Write {{"text": ..., "split": "train"}}.')
        text, split = obj.get("text"), obj.get("split", "train")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{n}: field 'text' is missing or empty. Add the prompt text.")
        if not isinstance(split, str) or split not in ("train", "test"):
            raise DataError(f"{path}:{n}: split {str(split)[:40]!r} is not 'train' or 'test'.")
        (train if split == "train" else test).append(check_text(path, n, text, "text").strip())
    if not train and not test:
        raise DataError(f"{path}: no prompts found. Write one JSON object a line.")
    return train, test


_read_split_file = read_split_prompts  # former private name


def load_value_prompts(value: str) -> tuple[list[str], list[str]]:
    """Shipped (train, held-out test) prompts where ``value`` is at stake (one of the 10 values)."""
    if not is_known_value(value):
        name = value_name(value)  # a typo of a known value raises here with the closest match
        raise ValueError(f"No shipped prompts for {name!r}: it is not one of the 10 values. Pass your own prompts "
                         "(train_gate(..., positives=[...]), `workbench steer --gate-prompts FILE`).")
    return read_split_prompts(data_root() / "prompts" / "values" / f"{get_value(value).name}.jsonl")


def load_unrelated_prompts() -> tuple[list[str], list[str]]:
    """Shipped (train, held-out test) prompts unrelated to any value (facts, code, recipes, ...)."""
    return read_split_prompts(data_root() / "prompts" / "unrelated.jsonl")


def _read_csv(path: Path, lines: list[str]) -> list[str]:
    # strict: an unterminated quote is an error, not the rest of the file read as one prompt
    reader = csv.DictReader(io.StringIO("\n".join(lines), newline=""), strict=True)
    done = 0  # lines consumed by complete rows
    try:
        columns = reader.fieldnames or []
        if "text" not in columns:
            shown = [c if len(c) <= 40 else c[:37] + "..." for c in columns[:10]] + (["..."] if len(columns) > 10 else [])
            raise DataError(f"{path}: no 'text' column (columns: {shown}). Name the prompt column 'text'.")
        texts = []
        for row in reader:
            text = row.get("text")
            if isinstance(text, str) and text.strip():
                texts.append(check_text(path, reader.line_num, text, "text").strip())
            done = reader.line_num
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            start = next((n for n in range(done + 1, len(lines) + 1) if lines[n - 1].strip()), done + 1)
            raise DataError(f"{path}:{start}: unterminated quoted field: the quote opened on line {start} is never "
                            "closed, so the rest of the file would be read as one prompt. Close the quote (write "
                            'a quote inside quoted text as "").') from None
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({err}). Quote fields that hold commas or quotes.") from None
    return texts


def read_prompts(path: str | Path) -> list[str]:
    """Read prompts from a CSV with a ``text`` column, JSONL objects with ``text``, or one per line.

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` (naming file and line) for
    malformed content, binary or non-UTF-8 files, overlong lines and files without prompts.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        raise DataError(f"{path}: .json prompt files are not read. Use JSONL (one {{\"text\": ...}} object a line, "
                        "suffix .jsonl), a CSV with a 'text' column, or one prompt a line.")
    lines = read_text_lines(path, "Prompt file")
    if path.suffix.lower() == ".csv":
        texts = _read_csv(path, lines)
    elif path.suffix.lower() == ".jsonl":
        texts = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            obj = parse_json_line(path, n, line)
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise DataError(f"{path}:{n}: each line needs a non-empty string field 'text'.")
            texts.append(check_text(path, n, obj["text"], "text").strip())
    else:
        texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise DataError(f"{path}: no prompts found. Write at least one prompt.")
    return texts
