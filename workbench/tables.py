"""Table outputs: result rows as CSV (atomically) and as pandas DataFrames (pandas optional).

Example:
    >>> write_csv("out/x.csv", ["value", "acc"], [("power", 0.9)])
    >>> rows_frame([{"value": "power", "acc": 0.9}])      # a DataFrame, if pandas is installed
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from workbench.io import atomic_write_text

__all__ = ["require_pandas", "rows_frame", "write_csv"]


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``rows`` under ``columns`` to ``path`` (temp file + rename); floats keep 6 decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([f"{x:.6f}" if isinstance(x, float) else x for x in row])
    return atomic_write_text(path, buf.getvalue())


def require_pandas() -> Any:
    """The pandas module, or an ImportError that says how to get it (pandas is optional)."""
    try:
        import pandas
    except ImportError:
        raise ImportError("to_frame() needs pandas, which the workbench does not install: pip install pandas. "
                          "The same rows are in the CSV files the commands write.") from None
    return pandas


def rows_frame(rows: Iterable[dict[str, Any]] | Iterable[Any]) -> Any:
    """A DataFrame of ``rows`` (dicts or dataclasses, one row each)."""
    import dataclasses

    pd = require_pandas()
    return pd.DataFrame([dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(r) for r in rows])
