"""Helpers the test files share: a synthetic value vector, prompts, hook counters, the spec of a call.

Example:
    >>> vec = synthetic_vector(tiny_model)
    >>> count_hooks(tiny_model), all_hooks(tiny_model)
"""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens.hook_points import HookPoint

from workbench.steering import SteeringSpec
from workbench.vectors import ValueVector

PROMPTS = ["hello there", "a longer prompt about values and choices", "x y"]


def synthetic_vector(model: Any, layers: tuple[int, ...] = (1, 2), bias: float = -8.0, seed: int = 0) -> ValueVector:
    """A random 'power' vector for ``model`` (probes with bias ``bias``, steering ``layers``)."""
    n, d = model.cfg.n_layers, model.cfg.d_model
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(n, d, generator=g)
    return ValueVector("power", weight, torch.full((n,), bias), torch.randn(n, d, generator=g) * 0.1,
                       torch.ones(n), torch.ones(n), tuple(layers), {})


def _module_hooks(m: torch.nn.Module) -> int:
    return len(m._forward_hooks) + len(m._forward_pre_hooks)


def count_hooks(model: Any) -> int:
    """Hooks on the model's hook points (where ``model.hooks()`` puts them) plus PyTorch forward hooks
    on its decoder layers (where ``steer_layers`` puts them).

    The bridge keeps a few permanent hooks of its own on other wrapped Hugging Face modules; those are
    not counted.
    """
    from workbench.model import decoder_layers

    points = sum(_module_hooks(m) for m in model.modules() if isinstance(m, HookPoint))
    return points + sum(_module_hooks(m) for m in decoder_layers(model))


def all_hooks(model: Any) -> int:
    """Every forward / pre-forward / backward hook on every module of the model."""
    return sum(_module_hooks(m) + len(m._backward_hooks) for m in model.modules())


def spec_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SteeringSpec:
    """The steering spec of a ``generate(model, prompts, spec_or_vector, **settings)`` call, unresolved."""
    target = args[2] if len(args) > 2 else kwargs.get("spec")
    settings = {k: kwargs.get(k) for k in ("vector", "method", "p0", "gate", "g0", "mode", "layers", "coef")}
    if isinstance(target, SteeringSpec):
        return target
    return SteeringSpec(**{k: v for k, v in settings.items() if v is not None}) if target is None else \
        SteeringSpec(**{k: v for k, v in {**settings, "vector": target}.items() if v is not None})
