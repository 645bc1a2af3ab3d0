"""ConVA steering: the closed-form minimal shift, hook factories and the ``steer()`` context manager.

For each steering layer in forward order (earlier shifts already in place) and each gated-open row:

    eps = max(0, (logit(P0) - b - w.e) / ||w||),    e' = e + eps * w / ||w||

which is the smallest move that lifts the probe's P_V to P0, and zero where it is already there.

Modes: ``prompt-once`` (ConVA) computes eps from the prompt's last token on the first forward pass
and adds the same shift at every position of every later pass (generated tokens included);
``per-step`` (SCAV) recomputes eps at the last position on every pass and shifts only there.
Method ``caa`` adds ``coef * mean_diff`` at every position instead (a fixed-coefficient baseline).

Example:
    >>> with steer(model, vector, p0=0.9, gate_open=[True]) as audit:
    ...     logits = model(tokens)
    >>> audit.layers[0].eps
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float

from workbench.constants import MODES
from workbench.model import hook_name
from workbench.vectors import ValueVector

__all__ = ["MAX_COEF", "MODES", "LayerRecord", "SteeringRecord", "check_coef", "closed_form_eps", "steer",
           "steering_hooks"]

METHODS = ("conva", "caa")
MAX_COEF = 1000.0  # |coef| beyond this multiplies the mean difference into nonsense (or inf/NaN activations)


def check_probability(name: str, p: Any) -> float:
    """Return ``p`` as a float if it is a finite probability strictly inside (0, 1), else raise a clear error.

    Accepts Python and NumPy real numbers and one-element tensors; booleans and strings are refused.
    """
    value: float | None = None
    try:
        if isinstance(p, torch.Tensor):
            if p.numel() == 1 and p.dtype != torch.bool and not p.dtype.is_complex:
                value = float(p.item())
        elif isinstance(p, numbers.Real) and not isinstance(p, bool):
            value = float(p)
    except (OverflowError, ValueError, TypeError):
        value = None
    if value is None or not math.isfinite(value) or not 0.0 < value < 1.0:
        shown = repr(p) if len(repr(p)) <= 80 else repr(p)[:77] + "..."
        raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {shown}. Pass a number such as 0.9.")
    return value


def check_coef(coef: Any, name: str = "coef") -> float:
    """Return the CAA coefficient as a float if it is finite with ``|coef| <= MAX_COEF``, else raise a clear error.

    Booleans, strings, NaN, inf and huge numbers (whose shift overflows the residual into inf/NaN and an
    empty answer) are refused; negative coefficients (steering away from the value) are allowed.
    """
    value: float | None = None
    try:
        if isinstance(coef, torch.Tensor):
            if coef.numel() == 1 and coef.dtype != torch.bool and not coef.dtype.is_complex:
                value = float(coef.item())
        elif isinstance(coef, numbers.Real) and not isinstance(coef, bool):
            value = float(coef)
    except (OverflowError, ValueError, TypeError):
        value = None
    if value is None or not math.isfinite(value) or abs(value) > MAX_COEF:
        shown = repr(coef) if len(repr(coef)) <= 80 else repr(coef)[:77] + "..."
        raise ValueError(f"{name} must be a finite number with |{name}| <= {MAX_COEF:g}, got {shown}. "
                         "Pass a coefficient such as 4.0 (the swept defaults are between 0.25 and 8).")
    return value


def closed_form_eps(
    resid: Float[torch.Tensor, "... d"], w: Float[torch.Tensor, " d"], b: float | torch.Tensor, p0: float
) -> Float[torch.Tensor, ...]:
    """Smallest eps >= 0 with sigmoid(w.(e + eps*w/||w||) + b) >= p0, for each residual ``e``.

    eps = max(0, (logit(p0) - b - w.e) / ||w||), computed in float64 (on the CPU where the device has no
    float64) with ``w`` rescaled by a power of two first, so a huge or tiny ||w|| neither overflows nor
    underflows. The result has the floating dtype of ``resid``/``w`` and lives on ``resid``'s device.
    Non-finite or mis-shaped inputs, a zero ``w`` and a shift too large to represent raise ``ValueError``;
    the output never holds NaN or inf.
    """
    p0 = check_probability("p0", p0)
    resid, w = torch.as_tensor(resid), torch.as_tensor(w)
    if w.ndim != 1 or w.numel() == 0:
        raise ValueError(f"The probe weight must be a non-empty 1-D vector [d_model], got shape {tuple(w.shape)}.")
    if resid.ndim == 0 or resid.shape[-1] != w.shape[0]:
        raise ValueError(
            f"The residual has shape {tuple(resid.shape)}; its last dimension must equal the probe width "
            f"d_model={w.shape[0]}. Use a vector made for this model."
        )
    calc = torch.device("cpu") if resid.device.type == "mps" else resid.device  # MPS has no float64
    e, w64 = resid.to(calc, torch.float64), w.to(calc, torch.float64)
    logit = math.log(p0) - math.log1p(-p0)
    b64: torch.Tensor | None = None
    b_value = math.nan
    try:
        if isinstance(b, numbers.Real) and not isinstance(b, bool):
            b_value = float(b)  # the usual case: no tensor needed for b
        else:
            b64 = torch.as_tensor(b, dtype=torch.float64, device=calc)
            torch.broadcast_shapes(b64.shape, e.shape[:-1])
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:
        raise ValueError(f"The probe bias must be a finite number (or one per row), got {b!r} ({err}).") from None
    if b64 is None and not math.isfinite(b_value):
        raise ValueError(f"The probe bias must be finite, got {b!r}. Re-fit the probe or reload the vector.")
    margin = logit - b_value if b64 is None else logit - b64
    amax = float(torch.linalg.vector_norm(w64, ord=math.inf))  # max |w_i|; NaN or inf if w holds any
    if not math.isfinite(amax) or amax == 0:
        raise ValueError(
            "The probe weight must be finite and non-zero to define a direction "
            f"({'it holds NaN or inf' if not math.isfinite(amax) else 'it is all zeros'}). "
            "Re-fit the probe or reload the vector."
        )
    # Rescale w by the power of two that brings max|w| into [0.5, 1): ||u|| and e.u then stay in range
    # whatever the size of w, and the rescaling is exact, so ordinary inputs give the plain formula's
    # bits. Two factors where one would overflow (subnormal or huge w).
    k = -math.frexp(amax)[1]
    factors = [math.ldexp(1.0, k)] if -1000 < k < 1000 else [math.ldexp(1.0, k // 2), math.ldexp(1.0, k - k // 2)]
    u, target = w64, margin  # target = (logit(p0) - b) / 2**-k
    for factor in factors:
        u, target = u * factor, target * factor
    out_dtype = torch.promote_types(resid.dtype, w.dtype)
    if not out_dtype.is_floating_point:
        out_dtype = torch.float64
    z = e @ u  # any NaN or inf in a row of e makes its z non-finite
    eps = torch.clamp((target - z) / torch.linalg.vector_norm(u), min=0.0).to(out_dtype)
    check = z + eps if b64 is None else z + eps + b64
    if not bool(torch.isfinite(check).all()):  # the one device sync; work out which input is at fault
        if b64 is not None and not bool(torch.isfinite(b64).all()):
            raise ValueError(f"The probe bias must be finite, got {b!r}. Re-fit the probe or reload the vector.")
        if not bool(torch.isfinite(e).all()):
            raise ValueError("The residual holds NaN or inf values; the model output is already broken.")
        raise ValueError(
            f"Reaching p0={p0} needs a shift too large to represent in {out_dtype} (||w|| is tiny, b is far "
            "below logit(p0), or w.e overflows). Check the probe and the residual, or lower p0."
        )
    return eps.to(resid.device)


@dataclass(frozen=True)
class LayerRecord:
    """What steering did at one layer, per batch row, on the prompt's forward pass."""

    layer: int
    p_before: tuple[float, ...]
    p_after: tuple[float, ...]
    eps: tuple[float, ...]


@dataclass
class SteeringRecord:
    """Filled in by the hooks while a ``steer()`` block runs (one entry per steered layer)."""

    gate_open: tuple[bool, ...]
    layers: list[LayerRecord] = field(default_factory=list)

    def for_row(self, row: int) -> list[dict[str, float]]:
        """Per-layer ``{layer, p_before, p_after, eps}`` dictionaries for one batch row."""
        return [{"layer": r.layer, "p_before": r.p_before[row], "p_after": r.p_after[row], "eps": r.eps[row]}
                for r in self.layers]


def _open_mask(gate_open: bool | Sequence[bool] | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    mask = torch.as_tensor(gate_open, dtype=torch.bool, device=device).reshape(-1)
    if mask.numel() == 1:
        return mask.expand(batch)
    if mask.numel() != batch:
        raise ValueError(f"gate_open has {mask.numel()} entries but the batch has {batch} rows.")
    return mask


def steering_hooks(
    vector: ValueVector,
    p0: float = 0.9,
    mode: str = "prompt-once",
    layers: Sequence[int] | None = None,
    gate_open: bool | Sequence[bool] | torch.Tensor = True,
    method: str = "conva",
    coef: float = 1.0,
    record: SteeringRecord | None = None,
) -> list[tuple[str, Any]]:
    """Build the ``(hook_name, fn)`` pairs for ``model.hooks(fwd_hooks=...)``.

    Each call builds fresh state, so two steering blocks never share shifts.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; use one of {MODES}.")
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; use one of {METHODS}.")
    p0 = check_probability("p0", p0)
    coef = check_coef(coef)
    layers = tuple(sorted(set(vector.layers if layers is None else (int(x) for x in layers))))
    bad = [x for x in layers if not 0 <= x < vector.n_layers]
    if bad or not layers:
        raise ValueError(f"Layers {bad or '[]'} invalid: choose steering layers from 0..{vector.n_layers - 1}.")
    shifts: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        w_cpu, b_cpu = vector.weight[layer], float(vector.bias[layer])

        def hook(resid: torch.Tensor, hook: Any) -> torch.Tensor:
            w = w_cpu.to(resid.device, resid.dtype)
            v = w / w.norm()
            open_rows = _open_mask(gate_open, resid.shape[0], resid.device)
            if method == "caa":
                delta = coef * vector.mean_diff[layer].to(resid.device, resid.dtype)
                return resid + open_rows[:, None, None] * delta
            if mode == "prompt-once" and layer in shifts:
                if shifts[layer].shape[0] != resid.shape[0]:
                    raise RuntimeError("Batch size changed inside a prompt-once steer() block; open a new block.")
                return resid + shifts[layer][:, None, :]
            last = resid[:, -1]
            eps = closed_form_eps(last.float(), w.float(), b_cpu, p0).to(resid.dtype) * open_rows
            shift = eps[:, None] * v
            if record is not None and layer not in shifts:
                p_before = torch.sigmoid(last @ w + b_cpu)
                p_after = torch.sigmoid((last + shift) @ w + b_cpu)
                record.layers.append(LayerRecord(layer, tuple(p_before.tolist()), tuple(p_after.tolist()),
                                                 tuple(eps.tolist())))
            shifts[layer] = shift
            if not bool(open_rows.any()):
                return resid  # gate closed everywhere: leave the pass exactly as it was
            if mode == "prompt-once":
                return resid + shift[:, None, :]
            out = resid.clone()
            out[:, -1] = last + shift
            return out

        return hook

    return [(hook_name(layer), make_hook(layer)) for layer in layers]


@contextlib.contextmanager
def steer(
    model: Any,
    vector: ValueVector,
    p0: float = 0.9,
    gate_open: bool | Sequence[bool] | torch.Tensor = True,
    mode: str = "prompt-once",
    layers: Sequence[int] | None = None,
    method: str = "conva",
    coef: float = 1.0,
) -> Iterator[SteeringRecord]:
    """Steer ``model`` toward ``vector``'s value inside the block; hooks are removed on exit and on error.

    ``gate_open`` is one bool for the whole batch or one per row (from a gate's ``is_open``); closed
    rows are left exactly as the unsteered model computes them. Yields a :class:`SteeringRecord`.
    """
    if vector.d_model != model.cfg.d_model or vector.n_layers != model.cfg.n_layers:
        raise ValueError(
            f"Vector for value {vector.value!r} has {vector.n_layers} layers x d_model {vector.d_model}; "
            f"this model has {model.cfg.n_layers} x {model.cfg.d_model}. Probe this model instead."
        )
    open_tuple = tuple(bool(x) for x in torch.as_tensor(gate_open, dtype=torch.bool).reshape(-1).tolist())
    record = SteeringRecord(open_tuple)
    hooks = steering_hooks(vector, p0, mode, layers, gate_open, method, coef, record)
    with model.hooks(fwd_hooks=hooks):
        yield record
