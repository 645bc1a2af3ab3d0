"""Prompt sets: the shipped value-eliciting and unrelated prompts, and user prompt files.

Example:
    >>> from workbench.prompts import load_value_prompts, read_prompts
    >>> train, test = load_value_prompts("power")
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from workbench.datasets import DataError, data_root
from workbench.values import get_value

__all__ = ["load_unrelated_prompts", "load_value_prompts", "read_prompts"]


def _read_split_file(path: Path) -> tuple[list[str], list[str]]:
    train: list[str] = []
    test: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{n}: malformed JSON ({err.msg}). Each line must be one JSON object.") from None
        text, split = obj.get("text") if isinstance(obj, dict) else None, obj.get("split", "train")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{n}: field 'text' is missing or empty. Add the prompt text.")
        if split not in ("train", "test"):
            raise DataError(f"{path}:{n}: split {split!r} is not 'train' or 'test'.")
        (train if split == "train" else test).append(text.strip())
    return train, test


def load_value_prompts(value: str) -> tuple[list[str], list[str]]:
    """Shipped (train, held-out test) prompts where ``value`` is at stake."""
    return _read_split_file(data_root() / "prompts" / "values" / f"{get_value(value).name}.jsonl")


def load_unrelated_prompts() -> tuple[list[str], list[str]]:
    """Shipped (train, held-out test) prompts unrelated to any value (facts, code, recipes, ...)."""
    return _read_split_file(data_root() / "prompts" / "unrelated.jsonl")


def read_prompts(path: str | Path) -> list[str]:
    """Read prompts from a CSV with a ``text`` column, JSONL objects with ``text``, or one per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Prompt file {path} does not exist.")
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        reader = csv.DictReader(raw.splitlines())
        if "text" not in (reader.fieldnames or []):
            raise DataError(f"{path}: no 'text' column (columns: {reader.fieldnames}). Name the prompt column 'text'.")
        texts = [row["text"].strip() for row in reader if (row.get("text") or "").strip()]
    elif path.suffix == ".jsonl":
        texts = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{n}: malformed JSON ({err.msg}).") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not obj["text"].strip():
                raise DataError(f"{path}:{n}: each line needs a non-empty string field 'text'.")
            texts.append(obj["text"].strip())
    else:
        texts = [line.strip() for line in raw.splitlines() if line.strip()]
    if not texts:
        raise DataError(f"{path}: no prompts found.")
    return texts
