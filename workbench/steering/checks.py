"""Checks of the numbers a steering spec carries: probabilities (P0, g0) and the CAA coefficient.

Example:
    >>> check_probability("p0", 0.9), check_coef(4)
    (0.9, 4.0)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["MAX_COEF", "check_coef", "check_probability"]

MAX_COEF = 1000.0  # |coef| beyond this multiplies the mean difference into nonsense (or inf/NaN activations)


def _real(x: Any) -> float | None:
    """``x`` as a float if it is a Python/NumPy real number or a one-element real tensor (never a bool)."""
    try:
        if isinstance(x, torch.Tensor):
            if x.numel() == 1 and x.dtype != torch.bool and not x.dtype.is_complex:
                return float(x.item())
        elif isinstance(x, numbers.Real) and not isinstance(x, bool):
            return float(x)
    except (OverflowError, ValueError, TypeError):
        pass
    return None


def _shown(x: Any) -> str:
    return repr(x) if len(repr(x)) <= 80 else repr(x)[:77] + "..."


def check_probability(name: str, p: Any) -> float:
    """Return ``p`` as a float if it is a finite probability strictly inside (0, 1), else raise a clear error.

    Accepts Python and NumPy real numbers and one-element tensors; booleans and strings are refused.
    """
    value = _real(p)
    if value is None or not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a probability strictly between 0 and 1, got {_shown(p)}. "
                         "Pass a number such as 0.9.")
    return value


def check_coef(coef: Any, name: str = "coef") -> float:
    """Return the CAA coefficient as a float if it is finite with ``|coef| <= MAX_COEF``, else raise a clear error.

    Booleans, strings, NaN, inf and huge numbers (whose shift overflows the residual into inf/NaN and an
    empty answer) are refused; negative coefficients (steering away from the value) are allowed.
    """
    value = _real(coef)
    if value is None or not math.isfinite(value) or abs(value) > MAX_COEF:
        raise ValueError(f"{name} must be a finite number with |{name}| <= {MAX_COEF:g}, got {_shown(coef)}. "
                         "Pass a coefficient such as 4.0 (the swept defaults are between 0.25 and 8).")
    return value
