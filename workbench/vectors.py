"""``ValueVector``: per-layer probes (w, b) for one value, their accuracies, and save/load.

Saved as ``<stem>.safetensors`` (tensors) plus ``<stem>.json`` (metadata); never pickled. Loading
checks the format version, the shapes, and (given a model) the model fingerprint. The file format lives in
:mod:`workbench.artefacts`; its names are re-exported here for the old import paths.

Example:
    >>> vec = load_vector("out/vectors/power.safetensors", model=model)
    >>> vec.direction(12).norm()
    tensor(1.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float

from workbench.artefacts import (
    FORMAT_VERSION,
    ArtefactError,
    check_model,
    meta_int,
    read_meta,
    read_tensors,
    write_artefact,
)

__all__ = [
    "FORMAT_VERSION",
    "ArtefactError",
    "ValueVector",
    "check_model",
    "load_vector",
    "read_meta",
    "read_tensors",
    "save_vector",
    "write_artefact",
]

_TENSORS = ("weight", "bias", "mean_diff", "train_acc", "test_acc")


@dataclass(frozen=True, eq=False)
class ValueVector:
    """Logistic probes for one value at every layer, and the layers chosen for steering.

    ``weight[l]`` and ``bias[l]`` define P_V(e) = sigmoid(weight[l] . e + bias[l]) on the residual
    ``e`` after block ``l``; ``mean_diff[l]`` is mean(positive) - mean(negative) (for CAA).
    ``layers`` are the steering layers (test accuracy above the threshold, last layers excluded).
    """

    value: str
    weight: Float[torch.Tensor, "n_layers d_model"]
    bias: Float[torch.Tensor, " n_layers"]
    mean_diff: Float[torch.Tensor, "n_layers d_model"]
    train_acc: Float[torch.Tensor, " n_layers"]
    test_acc: Float[torch.Tensor, " n_layers"]
    layers: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.weight.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.weight.shape[1])

    def direction(self, layer: int) -> torch.Tensor:
        """Unit value direction v = w / ||w|| at ``layer``."""
        w = self.weight[layer]
        return w / w.norm()

    def prob(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """P_V of residual vectors ``[..., d_model]`` at ``layer``."""
        w = self.weight[layer].to(resid.device, resid.dtype)
        return torch.sigmoid(resid @ w + self.bias[layer].to(resid.device, resid.dtype))

    def similarity(self, other: ValueVector) -> dict[int, float]:
        """Cosine similarity of the two probe directions at every layer both vectors have.

        Example:
            >>> power.similarity(benevolence)[12]      # opposite values: negative
            -0.31
        """
        if not isinstance(other, ValueVector):
            raise TypeError(f"similarity needs another ValueVector, got {type(other).__name__}.")
        if other.d_model != self.d_model:
            raise ValueError(f"Vectors of different widths ({self.d_model} vs {other.d_model}) come from different models.")
        n = min(self.n_layers, other.n_layers)
        cos = torch.nn.functional.cosine_similarity(self.weight[:n].double(), other.weight[:n].double(), dim=1)
        return {layer: float(cos[layer]) for layer in range(n)}

    def to_frame(self) -> Any:
        """The accuracy curve as a pandas DataFrame: one row a layer (``layer``, ``train_acc``, ``test_acc``,
        ``steering``, ``weight_norm``). Needs pandas (``pip install pandas``).

        Example:
            >>> vec.to_frame().query("steering")
        """
        from workbench.tables import require_pandas

        pd = require_pandas()
        return pd.DataFrame({
            "value": self.value,
            "layer": range(self.n_layers),
            "train_acc": self.train_acc.tolist(),
            "test_acc": self.test_acc.tolist(),
            "steering": [layer in self.layers for layer in range(self.n_layers)],
            "weight_norm": self.weight.norm(dim=1).tolist(),
        })

    def with_layers(self, layers: tuple[int, ...] | list[int]) -> ValueVector:
        """A copy steering ``layers`` instead (validated against the layer count)."""
        layers = tuple(sorted({int(x) for x in layers}))
        bad = [x for x in layers if not 0 <= x < self.n_layers]
        if bad or not layers:
            raise ValueError(f"Layers {bad or '[]'} invalid: choose from 0..{self.n_layers - 1}.")
        return ValueVector(self.value, self.weight, self.bias, self.mean_diff, self.train_acc,
                           self.test_acc, layers, dict(self.meta))


def save_vector(vector: ValueVector, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the tensor path."""
    tensors = {name: getattr(vector, name) for name in _TENSORS}
    meta = {**vector.meta, "value": vector.value, "layers": [int(x) for x in vector.layers],
            "n_layers": vector.n_layers, "d_model": vector.d_model}
    return write_artefact(Path(path), tensors, meta, "value_vector")


def load_vector(path: str | Path, model: Any | None = None) -> ValueVector:
    """Load a value vector; with ``model`` given, refuse one made for a different model."""
    from workbench.model import HOOK_SITE

    path = Path(path).with_suffix(".safetensors")
    meta_path = path.with_suffix(".json")
    meta = read_meta(path, "value_vector")
    n, d = meta_int(meta, "n_layers", meta_path), meta_int(meta, "d_model", meta_path)
    value = meta.get("value")
    if not isinstance(value, str) or not value.strip():
        raise ArtefactError(f"{meta_path}: field 'value' must be the value's name, got {str(value)[:40]!r}. "
                            "Re-save the value vector.")
    raw_layers = meta.get("layers")
    if (not isinstance(raw_layers, list) or not raw_layers
            or any(type(x) is not int or not 0 <= x < n for x in raw_layers)):
        raise ArtefactError(f"{path}: steering layers {str(raw_layers)[:80]} invalid for {n} layers "
                            "(expected a non-empty list of layer indices). Re-save the value vector.")
    layers = tuple(sorted(set(raw_layers)))
    if meta.get("hook_site", HOOK_SITE) != HOOK_SITE:
        raise ArtefactError(f"{path} was probed at hook site {str(meta['hook_site'])[:40]!r}; this package "
                            f"steers at {HOOK_SITE!r}. Re-probe the value.")
    t = read_tensors(path, "value vector", meta)
    missing = [name for name in _TENSORS if name not in t]
    if missing:
        raise ArtefactError(f"{path} lacks tensors {missing}. Re-save the value vector.")
    expected = {"weight": (n, d), "bias": (n,), "mean_diff": (n, d), "train_acc": (n,), "test_acc": (n,)}
    for name, shape in expected.items():
        if tuple(t[name].shape) != shape or t[name].dtype != torch.float32:
            raise ArtefactError(
                f"{path}: tensor {name!r} has shape {tuple(t[name].shape)} / {t[name].dtype}, expected "
                f"{shape} / float32 from the metadata. The file is damaged; re-save it."
            )
        if not torch.isfinite(t[name]).all():
            raise ArtefactError(f"{path}: tensor {name!r} holds NaN or inf values. Re-create the vector.")
    if bool((t["weight"][list(layers)].abs().amax(dim=1) == 0).any()):
        raise ArtefactError(f"{path}: a steering layer has an all-zero probe weight (no direction). Re-create the vector.")
    if model is not None:
        check_model(meta, model, f"Vector {path.name}")
    return ValueVector(value, t["weight"], t["bias"], t["mean_diff"], t["train_acc"], t["test_acc"], layers, meta)
