"""Steer several values at once toward a target profile ``{value: P0}``.

At a layer shared by the value vectors, with residual ``e`` and probes ``(w_i, b_i)``, the shift is the
smallest ``delta`` with

    w_i . (e + delta) + b_i >= logit(P0_i)    for every value i,

the Euclidean projection of ``e`` onto an intersection of half-spaces. It is solved exactly as a
least-distance program (Lawson & Hanson: one non-negative least-squares problem, ``scipy.optimize.nnls``).
When only one constraint is active the shift is ConVA's single-value closed form
(:func:`workbench.steering.closed_form_eps`), so a one-value profile steers exactly like ``steer()``.

Targets can conflict: probes of values across the Schwartz circumplex (e.g. power vs universalism) may
point in nearly opposite directions, and two high targets along opposite normals cannot both be met.
Values are then taken in priority order (the order of ``p0`` unless ``priority=`` is given): a value
whose constraint cannot be met together with the ones already kept (or not within ``max_shift``)
*gives way*. It is reported, with the values it clashes with, its achieved P_V and its slack, and a
:class:`ProfileConflictWarning` is issued.

The per-layer problem and :func:`solve_profile` are in :mod:`workbench.profiles`, the solver in
:mod:`workbench.least_distance`; their names are re-exported here. This module holds the hooks.

Example:
    >>> with steer_profile(model, {"benevolence": v_ben, "security": v_sec},
    ...                    {"benevolence": 0.9, "security": 0.8}) as record:
    ...     logits = model(tokens)
    >>> record.layers[0].rows[0].p_after, record.layers[0].rows[0].gave_way
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.least_distance import min_norm_shift
from workbench.model import hook_name
from workbench.profiles import (
    MET_TOL,
    LayerProblem,
    OpposedPair,
    ProfileSolution,
    layer_problems,
    opposed_pairs,
    solve_profile,
)
from workbench.steering.shifts import open_mask
from workbench.vectors import ValueVector

__all__ = [
    "MET_TOL",
    "LayerProfile",
    "OpposedPair",
    "ProfileConflictWarning",
    "ProfileRecord",
    "ProfileSolution",
    "min_norm_shift",
    "opposed_pairs",
    "solve_profile",
    "steer_profile",
]


class ProfileConflictWarning(UserWarning):
    """The targets of a profile cannot all be met at some layer; a value gave way."""


@dataclass(frozen=True)
class LayerProfile:
    """What profile steering did at one layer, one :class:`ProfileSolution` per batch row."""

    layer: int
    rows: tuple[ProfileSolution, ...]


@dataclass
class ProfileRecord:
    """Filled in by the hooks while a ``steer_profile()`` block runs (one entry per steered layer)."""

    gate_open: tuple[bool, ...]
    layers: list[LayerProfile] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        """True when every open row met every target at every layer."""
        return all(row.feasible for lp in self.layers for row in lp.rows)

    def for_row(self, row: int) -> list[dict[str, Any]]:
        """Per-layer summaries (``layer`` plus :meth:`ProfileSolution.as_dict`) for one batch row."""
        return [{"layer": lp.layer, **lp.rows[row].as_dict()} for lp in self.layers]


def _warn(layer: int, rows: Sequence[ProfileSolution]) -> None:
    for row in rows:
        for value, others in row.clashes:
            i = row.values.index(value)
            why = (f"it conflicts with {', '.join(others)}" if others else "it needs a shift above max_shift on its own")
            warnings.warn(
                f"Layer {layer}: the target P0={row.p0[i]} for {value!r} gives way ({why}); it ends at "
                f"P_V={row.p_after[i]:.3f}. Lower one of the targets, drop a value, or reorder priority=.",
                ProfileConflictWarning, stacklevel=2)
            return  # one warning per layer is enough; the record holds every row


@contextlib.contextmanager
def steer_profile(
    model: Any,
    vectors: Mapping[str, ValueVector],
    p0: Mapping[str, float],
    layers: Sequence[int] | None = None,
    gate_open: bool | Sequence[bool] | torch.Tensor = True,
    priority: Sequence[str] | None = None,
    max_shift: float | None = None,
) -> Iterator[ProfileRecord]:
    """Steer ``model`` toward the profile ``p0`` inside the block (prompt-once); hooks are removed on exit and error.

    On the first forward pass each steering layer (default: the layers all vectors share) computes, per
    gated-open row, the minimum-norm shift from the prompt's last token, and adds it at every position of
    that pass and of every later pass (generated tokens included). Earlier layers' shifts are in place
    when a later layer solves. Yields a :class:`ProfileRecord`.

    Example:
        >>> with steer_profile(model, {"achievement": va, "benevolence": vb}, {"achievement": 0.8, "benevolence": 0.9}):
        ...     out = model.generate(tokens, max_new_tokens=20)
    """
    problems = layer_problems(vectors, p0, layers, priority, max_shift)
    first = next(iter(vectors.values()))
    if first.d_model != model.cfg.d_model or first.n_layers != model.cfg.n_layers:
        raise ValueError(
            f"The vectors have {first.n_layers} layers x d_model {first.d_model}; this model has "
            f"{model.cfg.n_layers} x {model.cfg.d_model}. Probe this model instead."
        )
    record = ProfileRecord(tuple(bool(x) for x in torch.as_tensor(gate_open, dtype=torch.bool).reshape(-1).tolist()))
    shifts: dict[int, torch.Tensor] = {}

    def make_hook(problem: LayerProblem):
        def hook(resid: torch.Tensor, hook: Any) -> torch.Tensor:
            if problem.layer in shifts:
                if shifts[problem.layer].shape[0] != resid.shape[0]:
                    raise RuntimeError("Batch size changed inside a steer_profile() block; open a new block.")
                return resid + shifts[problem.layer][:, None, :]
            open_rows = open_mask(gate_open, resid.shape[0], torch.device("cpu")).tolist()
            last = resid[:, -1]
            rows = tuple(problem.solve(last[r], resid.dtype) if is_open else problem.closed(last[r], resid.dtype)
                         for r, is_open in enumerate(open_rows))
            shift = torch.stack([row.shift for row in rows])
            shifts[problem.layer] = shift
            record.layers.append(LayerProfile(problem.layer, rows))
            gave = [row for row in rows if not row.feasible]
            if gave:
                _warn(problem.layer, gave)
            if not any(open_rows):
                return resid  # gate closed everywhere: leave the pass exactly as it was
            return resid + shift[:, None, :]

        return hook

    hooks = [(hook_name(p.layer), make_hook(p)) for p in problems]
    with model.hooks(fwd_hooks=hooks):
        yield record
