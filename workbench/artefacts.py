"""The artefact file format shared by value vectors, gates and judges.

An artefact is ``<stem>.safetensors`` (float32 tensors, never pickled) plus a ``<stem>.json`` sidecar
(metadata with ``kind``, ``format_version`` and the SHA-256 of the tensor file). Writing is atomic;
reading checks the kind, the format version, the checksum and, through :func:`check_model`, the model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from workbench.io import atomic_path, check_input_path, check_output_path

__all__ = [
    "FORMAT_VERSION",
    "ArtefactError",
    "check_model",
    "meta_int",
    "read_meta",
    "read_tensors",
    "write_artefact",
]

FORMAT_VERSION = 1


class ArtefactError(ValueError):
    """A saved artefact is damaged, of another format version, or made for another model."""


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


def meta_int(meta: dict[str, Any], key: str, where: Path, minimum: int = 1) -> int:
    """``meta[key]`` as an integer >= ``minimum``, else an :class:`ArtefactError` naming the field."""
    value = meta.get(key)
    if type(value) is not int or value < minimum:
        raise ArtefactError(f"{where}: field {key!r} must be an integer >= {minimum}, got {str(value)[:40]!r}. "
                            "The metadata is damaged; re-save the artefact.")
    return value
