"""Per-layer logistic probes: positive vs negative residuals, accuracy curves, layer selection.

Example:
    >>> from workbench import load_model, load_pairs, probe_value
    >>> vec = probe_value(load_model(), load_pairs("power"))
    >>> vec.layers                 # steering layers: test acc > 0.9, last 5 layers excluded
    (9, 10, 11, ...)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from workbench import __version__
from workbench.activations import extract
from workbench.constants import EXCLUDE_LAST, FALLBACK_TOP, PROBE_THRESHOLD
from workbench.datasets import ContrastPair, as_pairs, split_pairs
from workbench.io import text_hash
from workbench.model import HOOK_SITE, fingerprint, model_info
from workbench.readout import READ_FORMATS, check_read_format, reading_texts
from workbench.values import value_name
from workbench.vectors import ValueVector

__all__ = ["DEFAULT_C", "FALLBACK_TOP", "NoLayerQualifies", "check_c", "fit_probes", "pair_activations", "probe_value",
           "select_layers"]


# Inverse regularisation of the logistic probes. ConVA's shift is eps = (logit(P0) - b - w.e) / ||w||, so a
# sharp probe (large ||w||) reads P_V near 1 on value prompts and steers by almost nothing; C = 0.01 keeps
# the same held-out accuracy with a 3-6x smaller ||w|| (docs/steering_defaults.md).
DEFAULT_C = 0.01


class NoLayerQualifies(ValueError):
    """No layer reaches the accuracy threshold outside the excluded last layers."""


# Below this many held-out pairs the test accuracies that choose the steering layers are too noisy to trust.
MIN_TEST_PAIRS = 20


class SmallTestSplitWarning(UserWarning):
    """The held-out split has fewer than :data:`MIN_TEST_PAIRS` pairs; the message gives the 95% interval."""


def _warn_small_split(n_test: int, test_acc: torch.Tensor, threshold: float, n_layers_passing: int,
                      test_fraction: float) -> None:
    import warnings

    from workbench.stats import wilson_interval

    n = 2 * n_test  # both sides of each test pair are scored
    best = float(test_acc.max())
    lo, hi = wilson_interval(best, n)
    lo_t, hi_t = wilson_interval(threshold, n)
    warnings.warn(
        f"Only {n_test} held-out pairs ({n} test sentences): the best test accuracy {best:.3f} has a 95% Wilson "
        f"interval [{lo:.2f}, {hi:.2f}], and an accuracy of {threshold} one of [{lo_t:.2f}, {hi_t:.2f}], so the "
        f"{n_layers_passing} layer(s) above the threshold may pass by chance. Use at least "
        f"{math.ceil(MIN_TEST_PAIRS / test_fraction)} pairs ({MIN_TEST_PAIRS} held out at test_fraction "
        f"{test_fraction}) before trusting the layer choice.",
        SmallTestSplitWarning,
        stacklevel=3,
    )


def fit_layer(x_train: np.ndarray, y_train: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, float]:
    """Fit one logistic probe on standardised features and fold the scaling back into (w, b)."""
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(x_train), y_train)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = clf.coef_[0] / scale
    b = float(clf.intercept_[0] - np.dot(clf.coef_[0], scaler.mean_ / scale))
    return w, b


def check_c(c: object) -> float:
    """Return the probes' inverse regularisation ``c`` if it is a finite positive number, else raise a clear error."""
    if not (isinstance(c, numbers.Real) and not isinstance(c, bool) and math.isfinite(c) and c > 0):
        raise ValueError(f"c (inverse regularisation strength) must be a positive number, got {c!r}.")
    return float(c)


def fit_probes(
    pos_train: torch.Tensor,
    neg_train: torch.Tensor,
    pos_test: torch.Tensor,
    neg_test: torch.Tensor,
    c: float = DEFAULT_C,
    seed: int = 0,
    shuffle_labels: bool = False,
) -> dict[str, torch.Tensor]:
    """Fit a probe per layer on ``[n, layers, d]`` activations; returns weight, bias, accuracies, mean_diff.

    ``shuffle_labels`` permutes the training labels (a control: test accuracy should fall to ~0.5).
    """
    named = (("pos_train", pos_train), ("neg_train", neg_train), ("pos_test", pos_test), ("neg_test", neg_test))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a [n, layers, d_model] tensor, got {type(t).__name__}.")
        if t.ndim != 3 or t.shape[0] == 0:
            raise ValueError(
                f"{name} must be a non-empty [n, layers, d_model] tensor, got shape {tuple(t.shape)}. A probe needs "
                "examples of both classes (positive and negative) in both the train and the test split."
            )
        if tuple(t.shape[1:]) != tuple(pos_train.shape[1:]):
            raise ValueError(f"{name} has [layers, d_model] = {tuple(t.shape[1:])} but pos_train has "
                             f"{tuple(pos_train.shape[1:])}: all four sets must come from the same model and layers.")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or inf activations; the model output is broken (check its dtype).")
    check_c(c)
    x_train = torch.cat([pos_train, neg_train]).double().numpy()
    x_test = torch.cat([pos_test, neg_test]).double().numpy()
    y_train = np.r_[np.ones(len(pos_train)), np.zeros(len(neg_train))]
    y_test = np.r_[np.ones(len(pos_test)), np.zeros(len(neg_test))]
    if shuffle_labels:
        y_train = np.random.default_rng(seed).permutation(y_train)
    n_layers, d = x_train.shape[1], x_train.shape[2]
    weight, bias = np.zeros((n_layers, d)), np.zeros(n_layers)
    train_acc, test_acc = np.zeros(n_layers), np.zeros(n_layers)
    for layer in range(n_layers):
        w, b = fit_layer(x_train[:, layer], y_train, c, seed)
        weight[layer], bias[layer] = w, b
        train_acc[layer] = np.mean(((x_train[:, layer] @ w + b) > 0) == y_train)
        test_acc[layer] = np.mean(((x_test[:, layer] @ w + b) > 0) == y_test)
    mean_diff = pos_train.double().mean(0) - neg_train.double().mean(0)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return {"weight": as_t(weight), "bias": as_t(bias), "train_acc": as_t(train_acc),
            "test_acc": as_t(test_acc), "mean_diff": mean_diff.float()}


def select_layers(
    test_acc: Sequence[float] | torch.Tensor, threshold: float = PROBE_THRESHOLD, exclude_last: int = EXCLUDE_LAST,
    fallback_top: int = 0,
) -> tuple[int, ...]:
    """Layers with test accuracy above ``threshold``, excluding the last ``exclude_last`` layers.

    When none qualifies, raise :class:`NoLayerQualifies`, or with ``fallback_top=k`` return the k
    best candidate layers instead (the caller records that the threshold was not met).
    """
    acc = [float(a) for a in test_acc]
    if not acc:
        raise ValueError("The test accuracies are empty: fit probes on at least one layer first.")
    if not 0 <= exclude_last < len(acc):
        raise ValueError(f"exclude_last must be in 0..{len(acc) - 1}, got {exclude_last}.")
    candidates = range(len(acc) - exclude_last)
    layers = tuple(i for i in candidates if acc[i] > threshold)
    if not layers and fallback_top > 0:
        return tuple(sorted(sorted(candidates, key=lambda i: -acc[i])[:fallback_top]))
    if not layers:
        best = max(candidates, key=lambda i: acc[i])
        raise NoLayerQualifies(
            f"No layer has test accuracy above {threshold} outside the last {exclude_last} layers "
            f"(best: layer {best} at {acc[best]:.3f}). Lower the threshold, exclude fewer layers, or add data."
        )
    return layers


def pair_activations(model: Any, pairs: Sequence[ContrastPair], test_fraction: float = 0.25, seed: int = 0,
                     batch_size: int = 32, cache: bool = False, progress: bool = True,
                     read_format: str = READ_FORMATS[0],
                     ) -> tuple[list[str], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The texts in extraction order and ``(pos_train, neg_train, pos_test, neg_test)`` activations.

    The split is by pair and seeded (:func:`workbench.datasets.split_pairs`), as :func:`probe_value` uses it.
    ``read_format`` (:mod:`workbench.readout`) is where each sentence is read; the texts returned are the
    sentences themselves.
    """
    train, test = split_pairs(pairs, test_fraction=test_fraction, seed=seed)
    texts = [p.positive for p in train] + [p.negative for p in train] + [p.positive for p in test] + [p.negative for p in test]
    acts = extract(model, reading_texts(model, texts, read_format), batch_size=batch_size, cache=cache, progress=progress)
    a, b = len(train), len(test)
    return texts, (acts[:a], acts[a : 2 * a], acts[2 * a : 2 * a + b], acts[2 * a + b :])


def probe_value(
    model: Any,
    pairs: Sequence[ContrastPair],
    dataset: str = "controlled",
    test_fraction: float = 0.25,
    seed: int = 0,
    threshold: float = PROBE_THRESHOLD,
    exclude_last: int = EXCLUDE_LAST,
    c: float = DEFAULT_C,
    shuffle_labels: bool = False,
    fallback_top: int = 0,
    batch_size: int = 32,
    cache: bool = False,
    progress: bool = True,
    value: str | None = None,
    read_format: str = READ_FORMATS[0],
) -> ValueVector:
    """Extract activations for ``pairs``, fit per-layer probes and pick steering layers.

    With ``shuffle_labels`` no layer is expected to qualify; the vector then keeps all candidate
    layers so the accuracy curve can still be inspected. ``fallback_top=k`` steers the k best layers
    when none passes the threshold; ``meta["layer_selection"]`` then says so. Fewer than
    :data:`MIN_TEST_PAIRS` held-out pairs warn (:class:`SmallTestSplitWarning`) with the 95% interval
    that the test accuracy then carries. ``pairs`` may be anything :func:`workbench.datasets.as_pairs`
    takes (tuples need ``value=``, e.g. ``probe_value(model, [(pos, neg), ...], value="honesty")``).
    ``read_format`` is where each sentence is read (:data:`workbench.readout.READ_FORMATS`: the bare
    sentence, or as a user turn at its end or at the assistant start); ``meta["read_format"]`` records it.
    """
    if isinstance(pairs, ContrastPair) or not pairs:
        raise ValueError("No pairs given: the data set is empty (pass a list of ContrastPair, e.g. load_pairs(value)).")
    if not all(isinstance(p, ContrastPair) for p in pairs):
        pairs = as_pairs(pairs, value=value)
    elif value is not None and {p.value for p in pairs} != {value_name(value)}:
        raise ValueError(f"value={value!r} but the pairs are for {sorted({p.value for p in pairs})}.")
    values = {p.value for p in pairs}
    if len(values) != 1:
        raise ValueError(f"Pairs mix several values {sorted(values)}; probe one value at a time.")
    n_layers = model.cfg.n_layers
    if not 0 <= exclude_last < n_layers:
        raise ValueError(f"exclude_last must be in 0..{n_layers - 1} for this {n_layers}-layer model, got {exclude_last}.")
    if not (isinstance(threshold, numbers.Real) and not isinstance(threshold, bool) and 0.0 <= threshold < 1.0):
        raise ValueError(f"threshold (test accuracy a steering layer must exceed) must be in [0, 1), got {threshold!r}.")
    check_c(c)  # before the extraction, which is the slow part
    check_read_format(read_format)
    texts, sets = pair_activations(model, pairs, test_fraction, seed, batch_size, cache, progress, read_format)
    a, b = len(sets[0]), len(sets[2])
    fit = fit_probes(*sets, c=c, seed=seed, shuffle_labels=shuffle_labels)
    selection = "threshold"
    try:
        layers = select_layers(fit["test_acc"], threshold, exclude_last)
    except NoLayerQualifies:
        if shuffle_labels:
            layers, selection = tuple(range(model.cfg.n_layers - exclude_last)), "all-candidates"
        elif fallback_top > 0:
            layers = select_layers(fit["test_acc"], threshold, exclude_last, fallback_top)
            selection = f"fallback-top-{fallback_top}"
        else:
            raise
    if b < MIN_TEST_PAIRS:
        passing = sum(float(a) > threshold for a in fit["test_acc"][: n_layers - exclude_last])
        _warn_small_split(b, fit["test_acc"], threshold, passing, test_fraction)
    meta = {**model_info(model), "model_fingerprint": fingerprint(model), "hook_site": HOOK_SITE,
            "dataset": dataset, "data_hash": text_hash(texts), "n_train_pairs": a, "n_test_pairs": b,
            "test_fraction": test_fraction,
            "seed": seed, "threshold": threshold, "exclude_last": exclude_last, "C": c,
            "shuffle_labels": shuffle_labels, "read_format": read_format,
            "layer_selection": selection, "package_version": __version__}
    return ValueVector(next(iter(values)), fit["weight"], fit["bias"], fit["mean_diff"], fit["train_acc"],
                       fit["test_acc"], layers, meta)
