"""Small statistics helpers: the Wilson score interval for a proportion measured on n items.

Example:
    >>> lo, hi = wilson_interval(1.0, 6)     # 6 of 6 right
    >>> round(lo, 2), hi
    (0.61, 1.0)
"""

from __future__ import annotations

import math

__all__ = ["wilson_interval"]


def wilson_interval(p: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95% for the default ``z``) for an observed share ``p`` of ``n`` items.

    Unlike the normal approximation it stays inside [0, 1] and is honest at p = 0 or 1 and small n.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of items, got {n!r}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a share in [0, 1], got {p!r}.")
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
