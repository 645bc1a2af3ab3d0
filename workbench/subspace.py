"""A value as a 2-D probe subspace: a second probe orthogonal to the first, and steering into both.

Some values are not separated well by one direction (power, on the embedded model, peaks near 0.8
test accuracy). :func:`orthogonal_probe` removes the first probe's direction from the residuals and
fits a second probe on what is left (one step of iterative null-space projection); its weight is
made exactly orthogonal to the first, which changes nothing on the projected data. Steering into
the subspace asks both probes for P >= P0 at once: the minimum-norm shift of
:func:`workbench.multi.steer_profile`, which for orthogonal probes is the sum of the two closed forms.

Example:
    >>> second = orthogonal_probe(model, load_pairs("power"), vec)
    >>> with steer_subspace(model, [vec, second], p0=0.95):
    ...     out = generate(model, prompts, method="none")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from workbench.datasets import ContrastPair
from workbench.multi import ProfileRecord, steer_profile
from workbench.probes import DEFAULT_C, fit_probes, pair_activations
from workbench.vectors import ValueVector

__all__ = ["orthogonal_probe", "steer_subspace"]


def _remove(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """``x`` without its component along ``unit`` (per layer: x ``[..., L, D]``, unit ``[L, D]``)."""
    return x - (x * unit).sum(-1, keepdim=True) * unit


def orthogonal_probe(model: Any, pairs: Sequence[ContrastPair], first: ValueVector, c: float | None = None,
                     batch_size: int = 32, cache: bool = False, progress: bool = True) -> ValueVector:
    """A second probe for ``first.value`` at every layer, orthogonal to ``first``'s direction.

    Uses the same seeded pair split and regularisation as ``first`` (its ``meta`` seed, test fraction
    and ``C``; pass ``c`` to override). Its train and test accuracies say how much value information
    is left once the first direction is removed.
    """
    if {p.value for p in pairs} != {first.value}:
        raise ValueError(f"The pairs are not all for {first.value!r}; pass load_pairs({first.value!r}).")
    seed, fraction = int(first.meta.get("seed", 0)), float(first.meta.get("test_fraction", 0.25))
    c = float(first.meta.get("C", DEFAULT_C)) if c is None else c
    _, sets = pair_activations(model, pairs, fraction, seed, batch_size, cache, progress)
    if sets[0].shape[1:] != first.weight.shape:
        raise ValueError(f"The vector has {tuple(first.weight.shape)} layers x d_model; this model gives "
                         f"{tuple(sets[0].shape[1:])}. Probe this model first.")
    unit = first.weight.double() / first.weight.double().norm(dim=-1, keepdim=True)
    fit = fit_probes(*(_remove(s.double(), unit).float() for s in sets), c=c, seed=seed)
    weight = _remove(fit["weight"].double(), unit).float()
    meta = {**first.meta, "subspace_direction": 2, "orthogonal_to": "the first probe's direction at each layer"}
    return ValueVector(first.value, weight, fit["bias"], _remove(fit["mean_diff"].double(), unit).float(),
                       fit["train_acc"], fit["test_acc"], first.layers, meta)


@contextlib.contextmanager
def steer_subspace(model: Any, directions: Sequence[ValueVector], p0: float | None = None,
                   gate_open: bool | Sequence[bool] | torch.Tensor = True,
                   layers: Sequence[int] | None = None) -> Iterator[ProfileRecord]:
    """Steer so that every probe of the subspace reads P >= ``p0`` (prompt-once, minimum-norm shift).

    ``p0=None`` is the value's swept P0 (:func:`workbench.steering.resolve_spec`).
    """
    if not directions:
        raise ValueError("No directions given: pass [vector] or [vector, orthogonal_probe(...)].")
    if p0 is None:
        from workbench.steering import SteeringSpec

        p0 = SteeringSpec("conva-nogate", vector=directions[0]).resolve(gate_required=False).p0
    names = [f"{d.value}#{i + 1}" for i, d in enumerate(directions)]
    with steer_profile(model, dict(zip(names, directions, strict=True)), dict.fromkeys(names, p0),
                       layers=layers, gate_open=gate_open) as record:
        yield record
