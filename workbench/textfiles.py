"""Reading user text files safely: UTF-8 lines, JSONL lines and text fields, with errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.io import check_input_path

__all__ = ["MAX_LINE_CHARS", "DataError", "check_text", "parse_json_line", "read_text_lines"]


class DataError(ValueError):
    """A data file is malformed; the message names the file, the line and the fix."""


def _fail(path: Path, line: int, problem: str, fix: str) -> DataError:
    """A :class:`DataError` for ``path:line``: the problem, then the fix."""
    return DataError(f"{path}:{line}: {problem}. {fix}")


MAX_LINE_CHARS = 1_000_000


def read_text_lines(path: str | Path, what: str = "Data file") -> list[str]:
    """The lines of a UTF-8 text file (a leading BOM and any line-ending style accepted).

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` naming the file (and line) for
    a folder, a FIFO or other non-regular file, a symbolic-link loop,
    binary content (NUL bytes), bytes that are not UTF-8, and lines over ``MAX_LINE_CHARS``.
    """
    path = check_input_path(path, what, error=DataError)  # a folder, FIFO or link loop: said as such
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
