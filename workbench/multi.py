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

Example:
    >>> with steer_profile(model, {"benevolence": v_ben, "security": v_sec},
    ...                    {"benevolence": 0.9, "security": 0.8}) as record:
    ...     logits = model(tokens)
    >>> record.layers[0].rows[0].p_after, record.layers[0].rows[0].gave_way
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

from workbench.model import hook_name
from workbench.steering import check_probability, closed_form_eps
from workbench.values import circumplex_distance, get_value
from workbench.vectors import ValueVector

__all__ = [
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

MET_TOL = 1e-4
"""A value counts as violated when its logit ends more than this below logit(P0) (float32 rounding
of the applied shift stays far below it)."""

_INFEASIBLE_GAP = 1e-12


class ProfileConflictWarning(UserWarning):
    """The targets of a profile cannot all be met at some layer; a value gave way."""


@dataclass(frozen=True, eq=False)
class ProfileSolution:
    """The shift for one residual at one layer and what it achieves for each value.

    ``slack`` is how far (in logits) each value ends below logit(P0), 0 where the target is met.
    ``active`` are the constraints that hold with equality and set the shift; ``gave_way`` the values
    whose target was given up to keep higher-priority ones, and ``clashes`` names, for each of them, the
    kept values it conflicts with (empty when it alone needs more than ``max_shift``).
    """

    values: tuple[str, ...]
    p0: tuple[float, ...]
    p_before: tuple[float, ...]
    p_after: tuple[float, ...]
    slack: tuple[float, ...]
    active: tuple[str, ...]
    gave_way: tuple[str, ...]
    clashes: tuple[tuple[str, tuple[str, ...]], ...]
    shift_norm: float
    shift: torch.Tensor = field(repr=False)

    @property
    def feasible(self) -> bool:
        """True when no value had to give way."""
        return not self.gave_way

    @property
    def violated(self) -> tuple[str, ...]:
        """Values whose P_V ends below their P0 (beyond ``MET_TOL`` logits)."""
        return tuple(v for v, s in zip(self.values, self.slack, strict=True) if s > MET_TOL)

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON summary (the shift itself left out)."""
        return {"values": list(self.values), "p0": list(self.p0), "p_before": list(self.p_before),
                "p_after": list(self.p_after), "slack": list(self.slack), "active": list(self.active),
                "gave_way": list(self.gave_way), "clashes": {v: list(o) for v, o in self.clashes},
                "shift_norm": self.shift_norm, "feasible": self.feasible}


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


@dataclass(frozen=True)
class OpposedPair:
    """Two value directions at ``layer`` whose cosine is below the threshold (they pull apart)."""

    layer: int
    a: str
    b: str
    cosine: float
    circumplex_steps: int | None
    schwartz_opposites: bool


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def min_norm_shift(normals: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Smallest ``x`` with ``normals @ x >= offsets``, by least-distance programming through one NNLS.

    Returns ``(x, multipliers)`` with ``x = normals.T @ multipliers`` and ``multipliers >= 0`` (positive
    exactly on the active constraints), or ``(None, certificate)`` when no ``x`` exists: then
    ``normals.T @ certificate`` is ~0 while ``offsets @ certificate > 0``, and the certificate's support
    names the conflicting constraints.

    Example:
        >>> x, lam = min_norm_shift(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 2.0]))
        >>> x.tolist(), lam.tolist()
        ([1.0, 2.0], [1.0, 2.0])
    """
    a = np.asarray(normals, dtype=np.float64)
    c = np.asarray(offsets, dtype=np.float64).reshape(-1)
    if a.ndim != 2 or a.shape[0] != c.shape[0]:
        raise ValueError(f"normals must be [k, d] and offsets [k]; got {a.shape} and {c.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(c).all()):
        raise ValueError("normals and offsets must be finite; a probe or residual holds NaN or inf.")
    k, d = a.shape
    if k == 0 or bool((c <= 0).all()):
        return np.zeros(d), np.zeros(k)
    scale = float(np.abs(c).max())
    e = np.vstack([a.T, (c / scale)[None, :]])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, _ = nnls(e, f, maxiter=50 * max(k, 10))
    gap = 1.0 - float(c @ u) / scale  # = ||E u - f||^2 at the optimum; 0 means incompatible
    if gap <= _INFEASIBLE_GAP:
        return None, u
    lam = u * (scale / gap)
    return a.T @ lam, lam


def _solve(a: np.ndarray, c: np.ndarray, order: Sequence[int], max_shift: float | None
           ) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[int, tuple[int, ...]]]]:
    """Shift, multipliers, given-way indices and their clashes; constraints kept greedily in ``order``."""
    def ok(x: np.ndarray | None) -> bool:
        return x is not None and (max_shift is None or float(np.linalg.norm(x)) <= max_shift)

    x, lam = min_norm_shift(a, c)
    if ok(x):
        return x, lam, [], []
    kept: list[int] = []
    gave: list[int] = []
    clashes: list[tuple[int, tuple[int, ...]]] = []
    best, best_lam = np.zeros(a.shape[1]), np.zeros(0)
    for i in order:
        trial = [*kept, i]
        x, lam = min_norm_shift(a[trial], c[trial])
        if ok(x):
            kept, best, best_lam = trial, x, lam
        else:
            gave.append(i)
            clashes.append((i, tuple(j for j, m in zip(kept, lam[:-1], strict=True) if m > 0)))
    full = np.zeros(a.shape[0])
    full[kept] = best_lam
    return best, full, gave, clashes


@dataclass(frozen=True, eq=False)
class _LayerProblem:
    """The probes of every value at one layer, in float64 on the CPU."""

    layer: int
    names: tuple[str, ...]
    weights: torch.Tensor  # [k, d] float64
    biases: tuple[float, ...]
    p0: tuple[float, ...]
    order: tuple[int, ...]
    max_shift: float | None

    def solve(self, e: torch.Tensor, dtype: torch.dtype = torch.float64) -> ProfileSolution:
        """Solve for one residual ``e`` [d]; the shift is returned in ``dtype`` on ``e``'s device."""
        e64 = e.detach().to("cpu", torch.float64)
        w = self.weights
        norms = w.norm(dim=1)
        targets = torch.tensor([_logit(p) for p in self.p0], dtype=torch.float64)
        b = torch.tensor(self.biases, dtype=torch.float64)
        offsets = (targets - b - w @ e64) / norms
        x, lam, gave, clashes = _solve((w / norms[:, None]).numpy(), offsets.numpy(), self.order, self.max_shift)
        active = [i for i in range(len(self.names)) if lam[i] > 0]
        if len(active) == 1:  # ConVA's closed form, computed exactly as steer() does
            i = active[0]
            wi = w[i].to(e.device, dtype)
            calc = torch.float64 if dtype == torch.float64 else torch.float32  # steer() computes in float32
            eps = closed_form_eps(e.to(calc), wi.to(calc), self.biases[i], self.p0[i]).to(dtype)
            shift = eps * (wi / wi.norm())
        else:
            shift = torch.from_numpy(x).to(e.device, dtype)
        logit_before = w @ e64 + b
        logit_after = w @ (e64 + shift.to("cpu", torch.float64)) + b
        n = self.names
        return ProfileSolution(
            values=n, p0=self.p0,
            p_before=tuple(torch.sigmoid(logit_before).tolist()), p_after=tuple(torch.sigmoid(logit_after).tolist()),
            slack=tuple(torch.clamp(targets - logit_after, min=0.0).tolist()),
            active=tuple(n[i] for i in active), gave_way=tuple(n[i] for i in gave),
            clashes=tuple((n[i], tuple(n[j] for j in js)) for i, js in clashes),
            shift_norm=float(shift.double().norm()), shift=shift,
        )

    def closed(self, e: torch.Tensor, dtype: torch.dtype) -> ProfileSolution:
        """The report for a gated-closed row: no shift."""
        logit = self.weights @ e.detach().to("cpu", torch.float64) + torch.tensor(self.biases, dtype=torch.float64)
        p = tuple(torch.sigmoid(logit).tolist())
        targets = torch.tensor([_logit(q) for q in self.p0], dtype=torch.float64)
        return ProfileSolution(self.names, self.p0, p, p, tuple(torch.clamp(targets - logit, min=0.0).tolist()),
                               (), (), (), 0.0, torch.zeros(e.shape[-1], dtype=dtype, device=e.device))


def _open_rows(gate_open: bool | Sequence[bool] | torch.Tensor, batch: int) -> list[bool]:
    mask = torch.as_tensor(gate_open, dtype=torch.bool).reshape(-1)
    if mask.numel() == 1:
        return [bool(mask)] * batch
    if mask.numel() != batch:
        raise ValueError(f"gate_open has {mask.numel()} entries but the batch has {batch} rows.")
    return [bool(x) for x in mask.tolist()]


def _check_vectors(vectors: Mapping[str, ValueVector], p0: Mapping[str, float]) -> tuple[str, ...]:
    if not isinstance(vectors, Mapping) or not vectors:
        raise ValueError("vectors must be a non-empty dict {value: ValueVector}.")
    if not isinstance(p0, Mapping):
        raise ValueError("p0 must be a dict {value: target probability}, e.g. {'benevolence': 0.9}.")
    missing, extra = sorted(set(vectors) - set(p0)), sorted(set(p0) - set(vectors))
    if missing or extra:
        raise ValueError(f"p0 and vectors must name the same values; no target for {missing}, no vector for {extra}. "
                         "Give one P0 per vector.")
    for name, vec in vectors.items():
        if not isinstance(vec, ValueVector):
            raise ValueError(f"vectors[{name!r}] is a {type(vec).__name__}, not a ValueVector.")
    shapes = {(v.n_layers, v.d_model) for v in vectors.values()}
    if len(shapes) > 1:
        raise ValueError(f"The vectors come from models of different shapes {sorted(shapes)}; probe every value "
                         "on the same model.")
    return tuple(p0)


def _problems(vectors: Mapping[str, ValueVector], p0: Mapping[str, float], layers: Sequence[int] | None,
              priority: Sequence[str] | None, max_shift: float | None) -> list[_LayerProblem]:
    names = _check_vectors(vectors, p0)
    targets = tuple(check_probability(f"p0[{n!r}]", p0[n]) for n in names)
    order_names = tuple(names if priority is None else priority)
    if sorted(order_names) != sorted(names):
        raise ValueError(f"priority must list each value of the profile once: got {list(order_names)}, "
                         f"values {list(names)}.")
    if max_shift is not None and not (isinstance(max_shift, int | float) and not isinstance(max_shift, bool)
                                      and math.isfinite(max_shift)
                                      and max_shift > 0):
        raise ValueError(f"max_shift must be a positive number or None, got {max_shift!r}.")
    first = next(iter(vectors.values()))
    if layers is None:
        chosen = sorted(set.intersection(*(set(v.layers) for v in vectors.values())))
        if not chosen:
            raise ValueError("The vectors share no steering layer; pass layers= explicitly (e.g. layers=[12]).")
    else:
        chosen = sorted({int(x) for x in layers})
        bad = [x for x in chosen if not 0 <= x < first.n_layers]
        if bad or not chosen:
            raise ValueError(f"Layers {bad or '[]'} invalid: choose steering layers from 0..{first.n_layers - 1}.")
    order = tuple(names.index(n) for n in order_names)
    out = []
    for layer in chosen:
        w = torch.stack([vectors[n].weight[layer].detach().to("cpu", torch.float64) for n in names])
        if not bool(torch.isfinite(w).all()) or bool((w.abs().amax(dim=1) == 0).any()):
            raise ValueError(f"At layer {layer} a probe weight is zero or non-finite; re-fit the vectors or pick "
                             "other layers.")
        b = tuple(float(vectors[n].bias[layer]) for n in names)
        out.append(_LayerProblem(layer, names, w, b, targets, order,
                                 None if max_shift is None else float(max_shift)))
    return out


def solve_profile(resid: torch.Tensor, vectors: Mapping[str, ValueVector], p0: Mapping[str, float], layer: int,
                  priority: Sequence[str] | None = None, max_shift: float | None = None) -> ProfileSolution:
    """The minimum-norm shift of one residual ``resid`` [d_model] at ``layer`` that meets every target.

    Example:
        >>> sol = solve_profile(e, {"power": vp, "security": vs}, {"power": 0.9, "security": 0.9}, layer=3)
        >>> sol.feasible, sol.p_after, sol.shift_norm
    """
    resid = torch.as_tensor(resid)
    if resid.ndim != 1:
        raise ValueError(f"resid must be one residual vector [d_model], got shape {tuple(resid.shape)}.")
    (problem,) = _problems(vectors, p0, [layer], priority, max_shift)
    if resid.shape[0] != problem.weights.shape[1]:
        raise ValueError(f"resid has width {resid.shape[0]}, the vectors {problem.weights.shape[1]}; use vectors "
                         "made for this model.")
    dtype = resid.dtype if resid.dtype.is_floating_point else torch.float64
    return problem.solve(resid.to(dtype), dtype)


def opposed_pairs(vectors: Mapping[str, ValueVector], layers: Sequence[int] | None = None,
                  max_cosine: float = -0.5) -> tuple[OpposedPair, ...]:
    """Pairs of value directions with cosine below ``max_cosine`` at the given (default: shared) layers.

    Such pairs cannot both be pushed high by a small shift; ``schwartz_opposites`` says whether the theory
    expects the conflict (values across the circumplex), when both names are Schwartz values.

    Example:
        >>> [(p.a, p.b, round(p.cosine, 2)) for p in opposed_pairs({"power": vp, "universalism": vu})]
    """
    problems = _problems(vectors, dict.fromkeys(vectors, 0.5), layers, None, None)
    names = problems[0].names
    out = []
    for problem in problems:
        unit = problem.weights / problem.weights.norm(dim=1, keepdim=True)
        cos = unit @ unit.T
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                if float(cos[i, j]) < max_cosine:
                    try:
                        steps: int | None = circumplex_distance(names[i], names[j])
                        opposite = get_value(names[j]).name in get_value(names[i]).opposites
                    except ValueError:
                        steps, opposite = None, False
                    out.append(OpposedPair(problem.layer, names[i], names[j], float(cos[i, j]), steps, opposite))
    return tuple(out)


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
    problems = _problems(vectors, p0, layers, priority, max_shift)
    first = next(iter(vectors.values()))
    if first.d_model != model.cfg.d_model or first.n_layers != model.cfg.n_layers:
        raise ValueError(
            f"The vectors have {first.n_layers} layers x d_model {first.d_model}; this model has "
            f"{model.cfg.n_layers} x {model.cfg.d_model}. Probe this model instead."
        )
    record = ProfileRecord(tuple(bool(x) for x in torch.as_tensor(gate_open, dtype=torch.bool).reshape(-1).tolist()))
    shifts: dict[int, torch.Tensor] = {}

    def make_hook(problem: _LayerProblem):
        def hook(resid: torch.Tensor, hook: Any) -> torch.Tensor:
            if problem.layer in shifts:
                if shifts[problem.layer].shape[0] != resid.shape[0]:
                    raise RuntimeError("Batch size changed inside a steer_profile() block; open a new block.")
                return resid + shifts[problem.layer][:, None, :]
            open_rows = _open_rows(gate_open, resid.shape[0])
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
