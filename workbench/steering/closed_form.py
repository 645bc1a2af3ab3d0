"""The closed-form minimal shift: eps = max(0, (logit(P0) - b - w.e) / ||w||).

It is the smallest move along v = w/||w|| that lifts the probe's P_V = sigmoid(w.e + b) to P0, and zero
where P_V is already there.

Example:
    >>> eps = closed_form_eps(resid[:, -1], vector.weight[layer], float(vector.bias[layer]), p0=0.95)
    >>> shifted = resid[:, -1] + eps[:, None] * vector.direction(layer)
"""

from __future__ import annotations

import math
import numbers

import torch
from jaxtyping import Float

from workbench.steering.checks import check_probability

__all__ = ["closed_form_eps"]


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
