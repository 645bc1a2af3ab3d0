"""Analysis of probe results: accuracy curves, value-direction similarity and circumplex agreement.

Plain numbers for :mod:`workbench.plots` (which draws them) and for reports.

Example:
    >>> sim = similarity_map(vectors, layer="middle")
    >>> round(circumplex_agreement(sim), 2)      # negative: adjacent values have similar vectors
    -0.39
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from workbench.values import VALUES, circumplex_distance, get_value, is_known_value, value_name
from workbench.vectors import ValueVector

__all__ = ["AccuracyCurve", "SimilarityMap", "accuracy_curves", "circumplex_agreement", "circumplex_sorted",
           "classical_mds", "similarity_map"]


def circumplex_sorted(values: Iterable[str]) -> list[str]:
    names = {value_name(v) for v in values}
    return sorted(names, key=lambda v: (get_value(v).position if is_known_value(v) else len(VALUES), v))


@dataclass(frozen=True)
class AccuracyCurve:
    """Per-layer probe accuracies of one value; ``steering_layers`` is empty when unknown (CSV input)."""

    value: str
    layers: tuple[int, ...]
    train_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    steering_layers: tuple[int, ...] = ()


def accuracy_curves(data: Iterable[ValueVector] | Iterable[Mapping[str, Any]]) -> dict[str, AccuracyCurve]:
    """Accuracy curves by value (circumplex order) from ValueVectors or ``accuracy.csv`` rows.

    Example:
        >>> accuracy_curves([{"value": "power", "layer": "0", "train_acc": "0.9", "test_acc": "0.8"}])["power"].test_acc
        (0.8,)
    """
    items = list(data)
    if not items:
        raise ValueError("No accuracy data given: pass ValueVectors or the rows of accuracy.csv.")
    by_value: dict[str, dict[int, tuple[float, float]]] = {}
    steering: dict[str, tuple[int, ...]] = {}
    for item in items:
        if isinstance(item, ValueVector):
            name = value_name(item.value)
            by_value[name] = {i: (float(item.train_acc[i]), float(item.test_acc[i])) for i in range(item.n_layers)}
            steering[name] = tuple(item.layers)
            continue
        missing = [k for k in ("value", "layer", "train_acc", "test_acc") if k not in item]
        if missing:
            raise ValueError(f"Accuracy row {dict(item)} lacks columns {missing}; expected value,layer,train_acc,test_acc "
                             "as written by `workbench probe`.")
        name = value_name(str(item["value"]))
        by_value.setdefault(name, {})[int(item["layer"])] = (float(item["train_acc"]), float(item["test_acc"]))
    out = {}
    for name in circumplex_sorted(by_value):
        layers = tuple(sorted(by_value[name]))
        out[name] = AccuracyCurve(name, layers, tuple(by_value[name][i][0] for i in layers),
                                  tuple(by_value[name][i][1] for i in layers), steering.get(name, ()))
    return out


@dataclass(frozen=True, eq=False)
class SimilarityMap:
    """Cosine similarities of value directions, in circumplex order; ``layers[i]`` is the layer of ``values[i]``."""

    values: tuple[str, ...]
    matrix: np.ndarray
    layers: tuple[int, ...]
    layer_rule: str

    @property
    def layer_label(self) -> str:
        """Words for the title: which layer(s) the directions come from."""
        if len(set(self.layers)) == 1:
            return f"layer {self.layers[0]} ({self.layer_rule})"
        return f"each value's {self.layer_rule} (layers {min(self.layers)}–{max(self.layers)})"


def similarity_map(vectors: Iterable[ValueVector], layer: int | str = "middle") -> SimilarityMap:
    """Cosine similarity of the unit value directions w/||w||.

    ``layer``: an int (same layer for all), ``"middle"`` (n_layers // 2), ``"best-mean"`` (the layer
    with the highest mean test accuracy across the values), or ``"best"`` (each value's best layer).

    Example:
        >>> sim = similarity_map(vectors, layer="middle")
        >>> sim.matrix.shape
        (10, 10)
    """
    vecs = {value_name(v.value): v for v in vectors}
    if len(vecs) < 2:
        raise ValueError(f"Need at least two value vectors for a similarity map, got {len(vecs)}.")
    names = circumplex_sorted(vecs)
    n_layers = {vecs[n].n_layers for n in names}
    if len(n_layers) != 1 or len({vecs[n].d_model for n in names}) != 1:
        raise ValueError("The value vectors come from models of different shapes; use vectors from one model.")
    n = n_layers.pop()
    if isinstance(layer, int) and not isinstance(layer, bool):
        if not 0 <= layer < n:
            raise ValueError(f"Layer {layer} out of range 0..{n - 1}.")
        layers, rule = [layer] * len(names), "chosen"
    elif layer == "middle":
        layers, rule = [n // 2] * len(names), "middle layer"
    elif layer == "best-mean":
        mean = np.mean([vecs[v].test_acc.numpy() for v in names], axis=0)
        layers, rule = [int(np.argmax(mean))] * len(names), "best mean test accuracy"
    elif layer == "best":
        layers, rule = [int(vecs[v].test_acc.argmax()) for v in names], "best test-accuracy layer"
    else:
        raise ValueError(f"layer must be an int, 'middle', 'best-mean' or 'best'; got {layer!r}.")
    dirs = np.stack([vecs[v].direction(i).double().numpy() for v, i in zip(names, layers, strict=True)])
    return SimilarityMap(tuple(names), dirs @ dirs.T, tuple(layers), rule)


def circumplex_agreement(sim: SimilarityMap) -> float:
    """Spearman correlation of pairwise cosine similarity with circumplex distance (negative = agreement).

    Example:
        >>> round(circumplex_agreement(similarity_map(vectors)), 2)
        -0.41

    Only the 10 values have circumplex positions: pairs with a concept of your own are left out.
    """
    known = [i for i, v in enumerate(sim.values) if is_known_value(v)]
    pairs = [(i, j) for a, i in enumerate(known) for j in known[a + 1:]]
    if len(pairs) < 3:
        raise ValueError("Need at least three values for a rank correlation.")
    cos = [float(sim.matrix[i, j]) for i, j in pairs]
    dist = [circumplex_distance(sim.values[i], sim.values[j]) for i, j in pairs]
    if len(set(dist)) < 2:
        raise ValueError("All pairs are at the same circumplex distance; the correlation is undefined.")
    return float(spearmanr(cos, dist).statistic)


def classical_mds(sim: np.ndarray) -> np.ndarray:
    """2-D classical MDS of the cosine distances 1 - sim (deterministic; sign fixed for stable plots)."""
    d2 = np.clip(1.0 - sim, 0.0, None) * 2.0  # squared Euclidean distance of unit vectors
    n = d2.shape[0]
    j = np.eye(n) - np.ones((n, n)) / n
    b = -0.5 * j @ d2 @ j
    vals, vecs = np.linalg.eigh(b)
    order = np.argsort(vals)[::-1][:2]
    xy = vecs[:, order] * np.sqrt(np.clip(vals[order], 0.0, None))
    signs = np.sign(xy[np.argmax(np.abs(xy), axis=0), range(2)])
    return xy * np.where(signs == 0, 1.0, signs)
