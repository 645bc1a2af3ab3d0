"""The TransformerLens backend: the shift operators as ``blocks.{L}.hook_resid_post`` hooks, in ``steer()``.

Built on the bridge's own ``model.hooks(fwd_hooks=...)``, so the hooks are gone on exit and on error.

Example:
    >>> with steer(model, vector, p0=0.9, gate_open=[True]) as audit:
    ...     logits = model(tokens)
    >>> audit.layers[0].eps
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from workbench.model import hook_name
from workbench.steering.shifts import GateOpen, ShiftFn, SteeringRecord, layer_shifts, prepare
from workbench.steering.spec import SteeringSpec, as_spec
from workbench.vectors import ValueVector

__all__ = ["steer", "steering_hooks"]


def _tl_hook(fn: ShiftFn) -> Any:
    def hook(resid: Any, hook: Any) -> Any:
        return fn(resid)

    return hook


def steering_hooks(
    vector: ValueVector | SteeringSpec,
    p0: float | None = None,
    mode: str | None = None,
    layers: Sequence[int] | None = None,
    gate_open: GateOpen = True,
    method: str | None = None,
    coef: float | None = None,
    record: SteeringRecord | None = None,
) -> list[tuple[str, Any]]:
    """The ``(hook_name, fn)`` pairs for ``model.hooks(fwd_hooks=...)``; fresh state on every call.

    Example:
        >>> with model.hooks(fwd_hooks=steering_hooks(vec, p0=0.95)):
        ...     logits = model(tokens)
    """
    spec = as_spec(vector, p0=p0, mode=mode, layers=layers, method=method, coef=coef)
    shifts = layer_shifts(spec.resolve(gate_required=False), gate_open, record)
    return [(hook_name(layer), _tl_hook(fn)) for layer, fn in shifts.items()]


@contextlib.contextmanager
def steer(
    model: Any,
    vector: ValueVector | SteeringSpec,
    p0: float | None = None,
    gate_open: GateOpen = True,
    mode: str | None = None,
    layers: Sequence[int] | None = None,
    method: str | None = None,
    coef: float | None = None,
) -> Iterator[SteeringRecord]:
    """Steer ``model`` toward the vector's value inside the block; hooks are removed on exit and on error.

    Takes a :class:`SteeringSpec` or a vector and keyword settings (unset ones resolved by
    :func:`workbench.steering.resolve_spec`; the method defaults to ``conva``). ``gate_open`` is one
    bool for the whole batch or one per row (from a gate's ``is_open``); closed rows are left exactly
    as the unsteered model computes them. Yields a :class:`SteeringRecord`.
    """
    spec = as_spec(vector, p0=p0, mode=mode, layers=layers, method=method, coef=coef)
    record, shifts = prepare(model, spec, gate_open)
    with model.hooks(fwd_hooks=[(hook_name(layer), _tl_hook(fn)) for layer, fn in shifts.items()]):
        yield record

