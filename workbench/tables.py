"""Write result rows as CSV, atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.io import atomic_write_text

__all__ = ["write_csv"]


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``rows`` under ``columns`` to ``path`` (temp file + rename); floats keep 6 decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([f"{x:.6f}" if isinstance(x, float) else x for x in row])
    return atomic_write_text(path, buf.getvalue())
