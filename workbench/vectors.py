"""``ValueVector``: per-layer probes (w, b) for one value, their accuracies, and save/load.

Saved as ``<stem>.safetensors`` (tensors) plus ``<stem>.json`` (metadata); never pickled. Loading
checks the format version, the shapes, and (given a model) the model fingerprint.

Example:
    >>> vec = load_vector("out/vectors/power.safetensors", model=model)
    >>> vec.direction(12).norm()
    tensor(1.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from workbench.io import atomic_path, atomic_write_text

__all__ = ["FORMAT_VERSION", "ArtefactError", "ValueVector", "check_model", "load_vector", "save_vector"]

FORMAT_VERSION = 1
_TENSORS = ("weight", "bias", "mean_diff", "train_acc", "test_acc")


class ArtefactError(ValueError):
    """A saved artefact is damaged, of another format version, or made for another model."""


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

    def with_layers(self, layers: tuple[int, ...] | list[int]) -> ValueVector:
        """A copy steering ``layers`` instead (validated against the layer count)."""
        layers = tuple(sorted({int(x) for x in layers}))
        bad = [x for x in layers if not 0 <= x < self.n_layers]
        if bad or not layers:
            raise ValueError(f"Layers {bad or '[]'} invalid: choose from 0..{self.n_layers - 1}.")
        return ValueVector(self.value, self.weight, self.bias, self.mean_diff, self.train_acc,
                           self.test_acc, layers, dict(self.meta))


def check_model(meta: dict[str, Any], model: Any, what: str) -> None:
    """Refuse an artefact whose recorded model (width, fingerprint) differs from ``model``."""
    from workbench.model import fingerprint

    if meta.get("d_model") != model.cfg.d_model:
        raise ArtefactError(
            f"{what} was made for a model with d_model={meta.get('d_model')}, but this model has "
            f"d_model={model.cfg.d_model}. Recompute it on this model (workbench probe)."
        )
    fp = fingerprint(model)
    if meta.get("model_fingerprint") != fp:
        raise ArtefactError(
            f"{what} was made for model {meta.get('model_name')!r} (fingerprint "
            f"{meta.get('model_fingerprint')}), not for this model (fingerprint {fp}). "
            "Recompute it on this model, or load the model it was made with."
        )


def save_vector(vector: ValueVector, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the tensor path."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {name: getattr(vector, name).detach().float().cpu().contiguous() for name in _TENSORS}
    meta = {**vector.meta, "format_version": FORMAT_VERSION, "kind": "value_vector", "value": vector.value,
            "layers": list(vector.layers), "n_layers": vector.n_layers, "d_model": vector.d_model}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format_version": str(FORMAT_VERSION)})
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_meta(path: Path, kind: str) -> dict[str, Any]:
    """Read and check the JSON sidecar of an artefact."""
    meta_path = path.with_suffix(".json")
    if not meta_path.is_file():
        raise ArtefactError(f"{meta_path} is missing: {kind} files come as .safetensors + .json pairs.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtefactError(f"{meta_path} is not valid JSON ({err}). Re-save the {kind}.") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        raise ArtefactError(f"{meta_path} does not describe a {kind}.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtefactError(
            f"{meta_path} has format version {meta.get('format_version')!r}; this package reads version "
            f"{FORMAT_VERSION}. Re-create the {kind} with this version."
        )
    return meta


def read_tensors(path: Path, kind: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any decoding failure into a clear :class:`ArtefactError`."""
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} does not exist.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ArtefactError(f"{path} is not a readable safetensors file ({err}). Re-save the {kind}.") from None


def load_vector(path: str | Path, model: Any | None = None) -> ValueVector:
    """Load a value vector; with ``model`` given, refuse one made for a different model."""
    path = Path(path).with_suffix(".safetensors")
    meta = read_meta(path, "value_vector")
    t = read_tensors(path, "value vector")
    missing = [n for n in _TENSORS if n not in t]
    if missing:
        raise ArtefactError(f"{path} lacks tensors {missing}. Re-save the value vector.")
    n, d = int(meta.get("n_layers", -1)), int(meta.get("d_model", -1))
    expected = {"weight": (n, d), "bias": (n,), "mean_diff": (n, d), "train_acc": (n,), "test_acc": (n,)}
    for name, shape in expected.items():
        if tuple(t[name].shape) != shape or t[name].dtype != torch.float32:
            raise ArtefactError(
                f"{path}: tensor {name!r} has shape {tuple(t[name].shape)} / {t[name].dtype}, expected "
                f"{shape} / float32 from the metadata. The file is damaged; re-save it."
            )
        if not torch.isfinite(t[name]).all():
            raise ArtefactError(f"{path}: tensor {name!r} holds NaN or inf values. Re-create the vector.")
    layers = tuple(int(x) for x in meta.get("layers", []))
    if not layers or any(not 0 <= x < n for x in layers):
        raise ArtefactError(f"{path}: steering layers {list(layers)} invalid for {n} layers.")
    if model is not None:
        check_model(meta, model, f"Vector {path.name}")
    return ValueVector(str(meta["value"]), t["weight"], t["bias"], t["mean_diff"], t["train_acc"],
                       t["test_acc"], layers, meta)
