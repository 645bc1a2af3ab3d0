"""Per-value steering defaults (ConVA's P0, CAA's coefficient): the file format and its readers.

``workbench sweep`` writes the file (:mod:`workbench.sweep`); everything that steers reads it here,
without importing the sweep or the evaluation stack. The shipped file is
``workbench/data/steering_defaults.json``.

Example:
    >>> steering_defaults("power")
    SteeringDefaults(p0=0.999, coef=1.0)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workbench.datasets import data_root
from workbench.io import atomic_write_text
from workbench.values import value_name

__all__ = ["FALLBACK", "SteeringDefaults", "defaults_meta", "load_defaults", "save_defaults", "steering_defaults"]


@dataclass(frozen=True)
class SteeringDefaults:
    """Per-value steering strengths: ConVA's target probability and CAA's coefficient."""

    p0: float
    coef: float


FALLBACK = SteeringDefaults(p0=0.95, coef=4.0)  # for values (or files) without a sweep


def save_defaults(defaults: Mapping[str, SteeringDefaults], path: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write the chosen defaults (and how they were chosen) as JSON, atomically."""
    body = {"meta": dict(meta), "values": {v: asdict(d) for v, d in sorted(defaults.items())}}
    return atomic_write_text(Path(path), json.dumps(body, indent=2) + "\n")


def _read(path: str | Path | None) -> tuple[dict[str, SteeringDefaults], dict[str, Any]]:
    path = Path(path) if path is not None else data_root() / "steering_defaults.json"
    if not path.is_file():
        return {}, {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        values = {v: SteeringDefaults(float(d["p0"]), float(d["coef"])) for v, d in body["values"].items()}
        meta = body.get("meta", {})
        return values, (dict(meta) if isinstance(meta, dict) else {})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not a steering-defaults file ({err}); rerun `workbench sweep`.") from None


def load_defaults(path: str | Path | None = None) -> dict[str, SteeringDefaults]:
    """Read a defaults file (default: the shipped one); a missing file gives no per-value defaults."""
    return _read(path)[0]


def defaults_meta(path: str | Path | None = None) -> dict[str, Any]:
    """How a defaults file was made (command, model, ``model_fingerprint``); ``{}`` for a missing file."""
    return _read(path)[1]


def steering_defaults(value: str, path: str | Path | None = None) -> SteeringDefaults:
    """The swept P0 and CAA coefficient for ``value`` (:data:`FALLBACK` where there is none)."""
    return load_defaults(path).get(value_name(value), FALLBACK)
