"""Target profiles ``{value: P0}`` over several value vectors: the per-layer problem and its solution.

At a layer, with residual ``e`` and probes ``(w_i, b_i)``, the shift is the smallest ``delta`` with
``w_i . (e + delta) + b_i >= logit(P0_i)`` for every value i (:mod:`workbench.least_distance`). With one
active constraint it is ConVA's single-value closed form. :func:`solve_profile` solves one residual;
:func:`opposed_pairs` lists value directions that pull apart. The hooks are in :mod:`workbench.multi`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.least_distance import greedy_min_norm_shift
from workbench.steering import check_probability, closed_form_eps
from workbench.values import circumplex_distance, get_value
from workbench.vectors import ValueVector

__all__ = ["MET_TOL", "LayerProblem", "OpposedPair", "ProfileSolution", "layer_problems", "opposed_pairs",
           "solve_profile"]

MET_TOL = 1e-4
"""A value counts as violated when its logit ends more than this below logit(P0) (float32 rounding
of the applied shift stays far below it)."""

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


@dataclass(frozen=True, eq=False)
class LayerProblem:
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
        x, lam, gave, clashes = greedy_min_norm_shift((w / norms[:, None]).numpy(), offsets.numpy(), self.order, self.max_shift)
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


def layer_problems(vectors: Mapping[str, ValueVector], p0: Mapping[str, float], layers: Sequence[int] | None,
              priority: Sequence[str] | None, max_shift: float | None) -> list[LayerProblem]:
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
        out.append(LayerProblem(layer, names, w, b, targets, order,
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
    (problem,) = layer_problems(vectors, p0, [layer], priority, max_shift)
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
    problems = layer_problems(vectors, dict.fromkeys(vectors, 0.5), layers, None, None)
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
