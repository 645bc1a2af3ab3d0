"""Least-distance programming: the smallest shift ``x`` with ``normals @ x >= offsets``.

Solved exactly through one non-negative least-squares problem (Lawson & Hanson, ``scipy.optimize.nnls``);
when the half-spaces do not intersect, :func:`greedy_min_norm_shift` keeps constraints in priority order
and reports the ones that give way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import nnls

__all__ = ["greedy_min_norm_shift", "min_norm_shift"]

_INFEASIBLE_GAP = 1e-12


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


def greedy_min_norm_shift(a: np.ndarray, c: np.ndarray, order: Sequence[int], max_shift: float | None
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
