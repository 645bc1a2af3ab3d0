"""``ValueVector``: per-layer probes (w, b) for one value, their accuracies, and save/load.

Saved as ``<stem>.safetensors`` (tensors) plus ``<stem>.json`` (metadata); never pickled. Loading
checks the format version, the shapes, and (given a model) the model fingerprint.

Example:
    >>> vec = load_vector("out/vectors/power.safetensors", model=model)
    >>> vec.direction(12).norm()
    tensor(1.)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from workbench.io import atomic_path, check_input_path, check_output_path

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


def check_model(meta: dict[str, Any], model: Any, what: str) -> None:
    """Refuse an artefact whose recorded model (width, depth, fingerprint) differs from ``model``."""
    from workbench.model import fingerprint

    if meta.get("d_model") != model.cfg.d_model:
        raise ArtefactError(
            f"{what} was made for a model with d_model={meta.get('d_model')}, but this model has "
            f"d_model={model.cfg.d_model}. Recompute it on this model (workbench probe)."
        )
    if "n_layers" in meta and meta["n_layers"] != model.cfg.n_layers:
        raise ArtefactError(
            f"{what} was made for a model with {meta['n_layers']} layers, but this model has "
            f"{model.cfg.n_layers}. Recompute it on this model (workbench probe)."
        )
    if not isinstance(meta.get("model_fingerprint"), str):
        raise ArtefactError(
            f"{what} records no model fingerprint, so it cannot be checked against this model. "
            "Recompute it on this model, or load it without model=."
        )
    fp = fingerprint(model)
    if meta["model_fingerprint"] != fp:
        raise ArtefactError(
            f"{what} was made for model {meta.get('model_name')!r} (fingerprint "
            f"{meta.get('model_fingerprint')}), not for this model (fingerprint {fp}). "
            "Recompute it on this model, or load the model it was made with."
        )


_MAX_META_BYTES = 10_000_000


def write_artefact(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], kind: str) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar, each atomically.

    The sidecar records the SHA-256 of the tensor file, so a pair from two different saves (e.g. a
    crash between the two renames) is detected on load. The metadata is serialised first: a value
    JSON cannot hold fails before anything is written. A suffix other than ``.safetensors`` (or none,
    or the ``.json`` of the sidecar) is refused: ``x.pt`` would otherwise silently become ``x.safetensors``.
    """
    if Path(path).suffix.lower() not in ("", ".safetensors", ".json"):
        raise ValueError(f"Cannot save to {path}: {kind.replace('_', ' ')}s are written as a .safetensors file plus a "
                         f".json sidecar (never pickled), so a {Path(path).suffix!r} file is not made. Pass "
                         f"{Path(path).with_suffix('.safetensors')}.")
    path = Path(path).with_suffix(".safetensors")
    # Both targets are checked before either is touched: a folder in the way of the second rename would
    # otherwise fail after the first had already replaced its file (a half-saved artefact).
    for target in (path, path.with_suffix(".json")):
        check_output_path(target, f"The {kind.replace('_', ' ')} file")
    data = save_bytes({k: v.detach().float().cpu().contiguous() for k, v in tensors.items()},
                      metadata={"format_version": str(FORMAT_VERSION)})
    full = {**meta, "format_version": FORMAT_VERSION, "kind": kind, "tensors_sha256": hashlib.sha256(data).hexdigest()}
    try:
        text = json.dumps(full, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"Cannot save {path}: its metadata is not plain JSON ({err}). Use str/int/float/list/dict "
                         "values without NaN.") from None
    # Both files are written in full under temporary names first; only then are they renamed into
    # place (sidecar first), so a failure while writing leaves the previous artefact intact, and a crash
    # between the two renames leaves a pair whose checksum does not match: refused on load, never mixed.
    with atomic_path(path) as tmp_tensors, atomic_path(path.with_suffix(".json")) as tmp_meta:
        tmp_tensors.write_bytes(data)
        tmp_meta.write_text(text, encoding="utf-8")
    return path


def save_vector(vector: ValueVector, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the tensor path."""
    tensors = {name: getattr(vector, name) for name in _TENSORS}
    meta = {**vector.meta, "value": vector.value, "layers": [int(x) for x in vector.layers],
            "n_layers": vector.n_layers, "d_model": vector.d_model}
    return write_artefact(Path(path), tensors, meta, "value_vector")


def read_meta(path: Path, kind: str) -> dict[str, Any]:
    """Read and check the JSON sidecar of an artefact."""
    meta_path = path.with_suffix(".json")
    if not os.path.lexists(meta_path):
        raise ArtefactError(f"{meta_path} is missing: {kind} files come as .safetensors + .json pairs.")
    check_input_path(meta_path, f"The metadata of the {kind}", error=ArtefactError)  # a folder, FIFO, link loop
    if meta_path.stat().st_size > _MAX_META_BYTES:
        raise ArtefactError(f"{meta_path} is {meta_path.stat().st_size} bytes, too large for {kind} metadata. "
                            f"Re-save the {kind}.")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ArtefactError(f"{meta_path} is not valid JSON ({str(err)[:200]}). Re-save the {kind}.") from None
    if not isinstance(meta, dict):
        raise ArtefactError(f"{meta_path} does not describe a {kind} (it holds a JSON {type(meta).__name__}). "
                            f"Re-save the {kind}.")
    if meta.get("kind") != kind:
        found = str(meta.get("kind"))[:40]
        raise ArtefactError(f"{meta_path} does not describe a {kind} (its kind is {found!r}). "
                            "Load it with the matching function (load_vector / load_gate).")
    version = meta.get("format_version")
    if type(version) is not int and str(version).strip() == str(FORMAT_VERSION):
        raise ArtefactError(
            f"{meta_path}: format_version is {type(version).__name__} {version!r}, but it must be the JSON "
            f"integer {FORMAT_VERSION} (the file was edited or written by another tool). Write "
            f'"format_version": {FORMAT_VERSION} without quotes, or re-create the {kind}.'
        )
    if type(version) is not int or version != FORMAT_VERSION:
        raise ArtefactError(
            f"{meta_path} has format version {str(version)[:40]!r}; this package reads version "
            f"{FORMAT_VERSION}. Re-create the {kind} with this version."
        )
    return meta


def read_tensors(path: Path, kind: str, meta: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any decoding failure into a clear :class:`ArtefactError`.

    Never unpickles anything. With ``meta`` holding ``tensors_sha256``, a tensor file from another
    save than its sidecar is refused.
    """
    check_input_path(path, f"{kind[:1].upper()}{kind[1:]} file", error=ArtefactError)  # says folder/FIFO/loop
    data = path.read_bytes()
    try:
        tensors = load_bytes(data)
    except Exception as err:  # safetensors raises several error types for damaged files
        raise ArtefactError(f"{path} is not a readable safetensors file ({str(err)[:200]}). Re-save the {kind}.") from None
    expected = (meta or {}).get("tensors_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ArtefactError(
            f"{path} does not match its metadata {path.with_suffix('.json').name} (checksum differs): the two "
            f"files come from different saves, e.g. an interrupted save or a copied half. Re-save the {kind}."
        )
    return tensors


def _meta_int(meta: dict[str, Any], key: str, where: Path, minimum: int = 1) -> int:
    value = meta.get(key)
    if type(value) is not int or value < minimum:
        raise ArtefactError(f"{where}: field {key!r} must be an integer >= {minimum}, got {str(value)[:40]!r}. "
                            "The metadata is damaged; re-save the artefact.")
    return value


def load_vector(path: str | Path, model: Any | None = None) -> ValueVector:
    """Load a value vector; with ``model`` given, refuse one made for a different model."""
    from workbench.model import HOOK_SITE

    path = Path(path).with_suffix(".safetensors")
    meta_path = path.with_suffix(".json")
    meta = read_meta(path, "value_vector")
    n, d = _meta_int(meta, "n_layers", meta_path), _meta_int(meta, "d_model", meta_path)
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
