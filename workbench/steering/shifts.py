"""Backend-neutral shift operators: ``resid -> resid`` functions, one per steering layer.

For each steering layer in forward order (earlier shifts already in place) and each gated-open row:

    eps = max(0, (logit(P0) - b - w.e) / ||w||),    e' = e + eps * w / ||w||

``prompt-once`` (ConVA) computes eps from the prompt's last token on the first forward pass and adds
the same shift at every position of every later pass (generated tokens included); ``per-step``
(SCAV) recomputes eps at the last position on every pass and shifts only there. The ``caa`` shift
adds ``coef * mean_diff`` at every position instead. Every function returns a new tensor; closed
rows are left exactly as they were. Both hook backends (:mod:`workbench.steering.tl`,
:mod:`workbench.steering.torch_hooks`) wrap these same functions.

Example:
    >>> record, shifts = prepare(model, SteeringSpec("conva-nogate", vector=vec), gate_open=True)
    >>> out = shifts[layer](resid)                      # resid [batch, pos, d_model]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.steering.closed_form import closed_form_eps
from workbench.steering.spec import SteeringSpec

__all__ = ["GateOpen", "LayerRecord", "ShiftFn", "SteeringRecord", "layer_shifts", "open_mask", "prepare"]

GateOpen = bool | Sequence[bool] | torch.Tensor
ShiftFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LayerRecord:
    """What steering did at one layer, per batch row, on the prompt's forward pass."""

    layer: int
    p_before: tuple[float, ...]
    p_after: tuple[float, ...]
    eps: tuple[float, ...]


@dataclass
class SteeringRecord:
    """Filled in by the hooks while a steering block runs (one entry per steered layer)."""

    gate_open: tuple[bool, ...]
    layers: list[LayerRecord] = field(default_factory=list)

    def for_row(self, row: int) -> list[dict[str, float]]:
        """Per-layer ``{layer, p_before, p_after, eps}`` dictionaries for one batch row."""
        return [{"layer": r.layer, "p_before": r.p_before[row], "p_after": r.p_after[row], "eps": r.eps[row]}
                for r in self.layers]


def open_mask(gate_open: GateOpen, batch: int, device: torch.device) -> torch.Tensor:
    """The per-row gate mask ``[batch]`` (one bool broadcasts to every row)."""
    mask = torch.as_tensor(gate_open, dtype=torch.bool, device=device).reshape(-1)
    if mask.numel() == 1:
        return mask.expand(batch)
    if mask.numel() != batch:
        raise ValueError(f"gate_open has {mask.numel()} entries but the batch has {batch} rows.")
    return mask


def _caa(spec: SteeringSpec, layer: int, gate_open: GateOpen) -> ShiftFn:
    mean_diff, coef = spec.vector.mean_diff[layer], float(spec.coef)

    def shift(resid: torch.Tensor) -> torch.Tensor:
        open_rows = open_mask(gate_open, resid.shape[0], resid.device)
        return resid + open_rows[:, None, None] * (coef * mean_diff.to(resid.device, resid.dtype))

    return shift


def _conva(spec: SteeringSpec, layer: int, gate_open: GateOpen, record: SteeringRecord | None) -> ShiftFn:
    w_cpu, b_cpu = spec.vector.weight[layer], float(spec.vector.bias[layer])
    p0, once = float(spec.p0), spec.mode == "prompt-once"
    state: dict[str, torch.Tensor] = {}  # prompt-once: the shift found on the prompt's pass

    def shift(resid: torch.Tensor) -> torch.Tensor:
        if once and "shift" in state:
            if state["shift"].shape[0] != resid.shape[0]:
                raise RuntimeError("Batch size changed inside a prompt-once steering block; open a new block.")
            return resid + state["shift"][:, None, :]
        w = w_cpu.to(resid.device, resid.dtype)
        open_rows = open_mask(gate_open, resid.shape[0], resid.device)
        last = resid[:, -1]
        eps = closed_form_eps(last.float(), w.float(), b_cpu, p0).to(resid.dtype) * open_rows
        delta = eps[:, None] * (w / w.norm())
        if record is not None and "shift" not in state:
            p_before = torch.sigmoid(last @ w + b_cpu)
            p_after = torch.sigmoid((last + delta) @ w + b_cpu)
            record.layers.append(LayerRecord(layer, tuple(p_before.tolist()), tuple(p_after.tolist()),
                                             tuple(eps.tolist())))
        state["shift"] = delta
        if not bool(open_rows.any()):
            return resid  # gate closed everywhere: leave the pass exactly as it was
        if once:
            return resid + delta[:, None, :]
        out = resid.clone()
        out[:, -1] = last + delta
        return out

    return shift


def layer_shifts(spec: SteeringSpec, gate_open: GateOpen = True, record: SteeringRecord | None = None
                 ) -> dict[int, ShiftFn]:
    """``{layer: shift}`` for a resolved spec, in forward order; fresh state on every call."""
    kind = spec.kind.shift
    if kind is None:
        raise ValueError(f"Method {spec.kind.name!r} adds no hooks; steer with 'conva', 'conva-nogate' or 'caa'.")
    if kind == "caa":
        return {layer: _caa(spec, layer, gate_open) for layer in spec.layers}
    return {layer: _conva(spec, layer, gate_open, record) for layer in spec.layers}


def gate_tuple(gate_open: GateOpen) -> tuple[bool, ...]:
    """The gate mask as a tuple of bools (what the record keeps)."""
    return tuple(bool(x) for x in torch.as_tensor(gate_open, dtype=torch.bool).reshape(-1).tolist())


def prepare(model: Any, spec: SteeringSpec, gate_open: GateOpen = True) -> tuple[SteeringRecord, dict[int, ShiftFn]]:
    """Resolve and check ``spec`` against ``model``; the record and the shifts both hook backends install."""
    spec = spec.resolve(model, gate_required=False)
    if spec.vector is None:
        raise ValueError("Steering needs a value vector (vector=...).")
    record = SteeringRecord(gate_tuple(gate_open))
    return record, layer_shifts(spec, gate_open, record)
