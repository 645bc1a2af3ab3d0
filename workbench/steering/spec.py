"""One frozen record of the steering settings, and the one resolver that fills what is left unset.

Every default lives in one place: ``mode`` in the dataclass field below, P0 and the CAA coefficient
per value in the steering-defaults file (:func:`workbench.defaults.steering_defaults`, whose
``FALLBACK`` covers values without a sweep), g0 in the gate (its calibrated threshold), the layers in
the vector (its steering layers). :func:`resolve_spec` also checks that what it is given belongs
together: the value asked for, the vector's and the gate's value, their model fingerprints and widths.

Example:
    >>> spec = SteeringSpec("conva", vector=vec, gate=gate).resolve(model)
    >>> spec.p0, spec.g0, spec.layers
    (0.999, 0.83, (9, 10, 11))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.constants import MODES
from workbench.methods import GENERATION_METHODS, SUITE_METHODS, get_method
from workbench.steering.checks import check_coef, check_probability
from workbench.values import value_name
from workbench.vectors import ValueVector

if TYPE_CHECKING:
    from workbench.gate import Gate
    from workbench.methods import Method

__all__ = ["SpecMismatch", "SteeringSpec", "as_spec", "resolve_spec"]


class SpecMismatch(ValueError):
    """The vector, gate, defaults or model given to a spec do not belong together."""


@dataclass(frozen=True)
class SteeringSpec:
    """How to steer: the method, its artefacts and strengths. ``None`` means "the default" (see module doc).

    ``value`` (optional) is the value the caller asked for; the vector and gate must be made for it.
    ``defaults`` is a steering-defaults file from ``workbench sweep`` (``None``: the shipped one).
    """

    method: str | None = None  # None: "conva" with a vector, "none" without
    vector: ValueVector | None = None
    gate: Gate | None = None
    p0: float | None = None
    coef: float | None = None
    g0: float | None = None
    mode: str = MODES[0]
    layers: tuple[int, ...] | None = None
    value: str | None = None
    defaults: Path | None = None

    def __post_init__(self) -> None:
        if self.method is not None:
            get_method(self.method, SUITE_METHODS)
        if self.mode not in MODES:
            raise ValueError(f"Unknown mode {self.mode!r}; use one of {MODES}.")
        for name in ("p0", "g0"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_probability(name, getattr(self, name)))
        if self.coef is not None:
            object.__setattr__(self, "coef", check_coef(self.coef))
        if self.layers is not None:
            if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Sequence | range):
                raise TypeError(f"layers must be a sequence of layer numbers, got {self.layers!r}.")
            object.__setattr__(self, "layers", tuple(sorted({int(x) for x in self.layers})))
        if self.defaults is not None:
            object.__setattr__(self, "defaults", Path(self.defaults))

    @property
    def kind(self) -> Method:
        """The method's registry record (:mod:`workbench.methods`)."""
        return get_method(self.method or ("none" if self.vector is None else "conva"), SUITE_METHODS)

    def replace(self, **changes: Any) -> SteeringSpec:
        """A copy with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)

    def resolve(self, model: Any | None = None, gate_required: bool = True) -> SteeringSpec:
        """This spec with every default filled in and checked (:func:`resolve_spec`)."""
        return resolve_spec(self, model, gate_required)


def _fix(vector: ValueVector) -> str:
    return f"workbench probe --values {vector.value}"


def _check_together(spec: SteeringSpec, model: Any | None) -> None:
    vec, gate = spec.vector, spec.gate
    if spec.value is not None:
        wanted = value_name(spec.value)
        for what, artefact, fix in (("vector", vec, f"probe it: workbench probe --values {wanted}"),
                                    ("gate", gate, f"train one: train_gate(model, {wanted!r})")):
            if artefact is not None and value_name(artefact.value) != wanted:
                raise SpecMismatch(f"The {what} was made for value {artefact.value!r}, not for {wanted!r}. Use the "
                                   f"{wanted} {what}, or {fix}.")
    if vec is None:
        return
    if model is not None and (vec.d_model != model.cfg.d_model or vec.n_layers != model.cfg.n_layers):
        raise SpecMismatch(
            f"Vector for value {vec.value!r} has {vec.n_layers} layers x d_model {vec.d_model}; "
            f"this model has {model.cfg.n_layers} x {model.cfg.d_model}. Probe this model instead.")
    if gate is not None:
        if value_name(gate.value) != value_name(vec.value):
            raise SpecMismatch(
                f"The gate was trained for value {gate.value!r} but the vector steers {vec.value!r}: a gate only "
                f"says when its own value is at stake. Train a {vec.value} gate (train_gate(model, {vec.value!r})) "
                f"or load the saved {vec.value} gate.")
        fp_vec, fp_gate = vec.meta.get("model_fingerprint"), gate.meta.get("model_fingerprint")
        if isinstance(fp_vec, str) and isinstance(fp_gate, str) and fp_vec != fp_gate:
            raise SpecMismatch(
                f"The {vec.value} vector was probed on model fingerprint {fp_vec} but the gate was trained on "
                f"{fp_gate}. Train the gate on the vector's model (or re-probe: {_fix(vec)}).")
        width = int(gate.weight.shape[0])
        if gate.kind == "residual" and width != vec.d_model:
            raise SpecMismatch(
                f"The residual gate reads d_model={width} residuals but the {vec.value} vector has "
                f"d_model={vec.d_model}: they come from different models. Train the gate on the vector's model.")
    if spec.defaults is not None:  # the shipped file is a starting point for any model; a sweep's file is not
        from workbench.defaults import defaults_meta

        fp_file, fp_vec = defaults_meta(spec.defaults).get("model_fingerprint"), vec.meta.get("model_fingerprint")
        if isinstance(fp_file, str) and isinstance(fp_vec, str) and fp_file != fp_vec:
            raise SpecMismatch(
                f"The steering defaults {spec.defaults} were swept on model fingerprint {fp_file}, but the "
                f"{vec.value} vector comes from {fp_vec}. Sweep this model (workbench sweep) or pass p0/coef.")


def resolve_spec(spec: SteeringSpec, model: Any | None = None, gate_required: bool = True) -> SteeringSpec:
    """Fill ``method``, ``p0``, ``coef``, ``g0`` and ``layers`` from their one home and check the whole.

    ``gate_required``: method ``conva`` needs a gate object (``steer()`` takes an explicit gate mask
    instead, so it passes ``False``). Raises :class:`SpecMismatch` (a ``ValueError``) with the fix.

    Example:
        >>> resolve_spec(SteeringSpec("caa", vector=vec)).coef    # the value's swept coefficient
        1.0
    """
    method = spec.kind
    if not method.generation and gate_required:
        raise ValueError(f"Method {method.name!r} is the suite's name for {method.generates_as!r} with a "
                         f"{method.dataset} vector; pass method={method.generates_as!r} with that vector "
                         f"(methods: {GENERATION_METHODS}).")
    if method.needs_vector and spec.vector is None:
        raise ValueError(f"Method {method.name!r} needs a value vector (vector=...).")
    if method.uses_gate and spec.gate is None and gate_required:
        raise ValueError(f"Method {method.name!r} needs a gate; pass gate=... or use method='conva-nogate'.")
    _check_together(spec, model)
    vec, changes = spec.vector, {"method": method.name}
    if vec is not None:
        from workbench.defaults import steering_defaults

        found = steering_defaults(vec.value, spec.defaults)
        changes.update(p0=found.p0 if spec.p0 is None else spec.p0, coef=found.coef if spec.coef is None else spec.coef)
        layers = vec.layers if spec.layers is None else spec.layers
        bad = [x for x in layers if not 0 <= x < vec.n_layers]
        if bad or not layers:
            raise ValueError(f"Layers {bad or '[]'} invalid: choose steering layers from 0..{vec.n_layers - 1}.")
        changes["layers"] = tuple(layers)
    if spec.gate is not None and spec.g0 is None:
        changes["g0"] = spec.gate.g0
    return spec.replace(**changes)


def as_spec(target: SteeringSpec | ValueVector | None, **settings: Any) -> SteeringSpec:
    """A spec from either a spec or a vector plus keyword settings (``None`` settings are left unset).

    The thin layer behind the keyword arguments of ``generate``/``steer``/``steer_layers``: mixing a
    spec with keyword settings is refused, so no setting is silently dropped.

    Example:
        >>> as_spec(vec, p0=0.95, mode="per-step").p0
        0.95
    """
    given = {k: v for k, v in settings.items() if v is not None}
    if isinstance(target, SteeringSpec):
        if given:
            raise TypeError(f"Pass either a SteeringSpec or keyword settings, not both (got {sorted(given)}); "
                            "use spec.replace(...) to change a spec.")
        return target
    if target is not None and not isinstance(target, ValueVector):
        raise TypeError(f"Expected a SteeringSpec or a ValueVector, got {type(target).__name__}.")
    if target is not None and given.get("vector") is not None:
        raise TypeError("The vector is given twice (positionally and as vector=).")
    if target is not None:
        given["vector"] = target
    return SteeringSpec(**given)
