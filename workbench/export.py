"""Export a value vector as a llama.cpp control vector (GGUF), and import one back.

The file follows the format that repeng writes and llama.cpp reads with ``--control-vector``:
architecture ``controlvector``, keys ``controlvector.model_hint`` (a model-family hint such as
``llama``) and ``controlvector.layer_count`` (number of direction tensors), and one float32 tensor
``direction.{N}`` of shape [d_model] per steered layer. We add ``workbench.*`` keys (value, hook site,
per-layer strengths, model name and fingerprint) that llama.cpp ignores.

Layer numbering: ``direction.N`` is added to the output of block N (0-based), which is
``blocks.N.hook_resid_post`` and layer N of a :class:`~workbench.vectors.ValueVector`, so the index is
kept as it is. llama.cpp's loader rejects ``direction.0`` and has no slot for block 0's output (it stores
``direction.N`` at slot N-1 and applies slot N-1 after block N); repeng's ``ControlModel`` adds
``directions[N]`` to the output of ``model.layers[N]``, the same point. Layer 0 therefore cannot be
exported, and an import refuses ``direction.0``.

What travels is a fixed shift ``strength * w/||w||`` added at every token, like CAA. ConVA's
per-prompt closed-form eps and the gate stay in the workbench: pick ``strength`` near the eps that
``steer()`` reports for typical prompts (its record's ``eps``).

Example:
    >>> path = export_gguf(vec, "power.gguf", strength=8.0)      # llama-cli -m model.gguf --control-vector power.gguf
    >>> cv = import_gguf("power.gguf")
    >>> cv.directions[12].norm()
    tensor(8.)
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from workbench.artefacts import ArtefactError
from workbench.io import atomic_path, check_input_path, check_output_path
from workbench.model import HOOK_SITE
from workbench.vectors import ValueVector

__all__ = ["ARCHITECTURE", "ControlVector", "control_directions", "export_gguf", "import_gguf"]

ARCHITECTURE = "controlvector"
_DIRECTION = re.compile(r"direction\.(\d+)")


@dataclass(frozen=True, eq=False)
class ControlVector:
    """Direction tensors of a control-vector file: ``directions[N]`` [d_model] is added after block N."""

    directions: dict[int, torch.Tensor]
    model_hint: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.directions))

    @property
    def d_model(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])


MAX_STRENGTH = 1e6  # far beyond any residual norm; larger values overflow float32 (inf) or wreck the model


def _strengths(strength: float | Mapping[int, float], layers: Sequence[int]) -> dict[int, float]:
    def number(x: Any, where: str) -> float:
        try:
            ok = not isinstance(x, bool) and isinstance(x, numbers.Real) and math.isfinite(float(x))
        except (OverflowError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"strength{where} must be a finite number, got {x!r}. Pass e.g. strength=8.0.")
        if abs(float(x)) > MAX_STRENGTH:
            raise ValueError(f"strength{where} is {float(x):g}; |strength| must be at most {MAX_STRENGTH:g} (the shift is "
                             "added to the residual stream, whose norm is in the tens to thousands). Pass e.g. "
                             "strength=8.0.")
        return float(x)

    if isinstance(strength, Mapping):
        missing = [layer for layer in layers if layer not in strength]
        if missing:
            raise ValueError(f"strength gives no value for layers {missing}; give one per exported layer.")
        return {layer: number(strength[layer], f"[{layer}]") for layer in layers}
    value = number(strength, "")
    return dict.fromkeys(layers, value)


def control_directions(vector: ValueVector, strength: float | Mapping[int, float],
                       layers: Sequence[int] | None = None) -> dict[int, torch.Tensor]:
    """``{layer: strength * w/||w||}`` in float32 for the vector's steering layers (or ``layers``).

    Example:
        >>> control_directions(vec, 4.0)[12].norm()
        tensor(4.)
    """
    if not isinstance(vector, ValueVector):
        raise TypeError(f"vector must be a ValueVector, got {type(vector).__name__}.")
    chosen = sorted({int(x) for x in (vector.layers if layers is None else layers)})
    bad = [x for x in chosen if not 0 <= x < vector.n_layers]
    if bad or not chosen:
        raise ValueError(f"Layers {bad or '[]'} invalid: choose from 1..{vector.n_layers - 1}.")
    if 0 in chosen:
        raise ValueError("Layer 0 cannot be exported: llama.cpp refuses direction.0 and never steers block 0's output. "
                         "Drop layer 0 (pass layers= without it).")
    scale = _strengths(strength, chosen)
    out = {}
    for layer in chosen:
        w = vector.weight[layer].detach().to("cpu", torch.float64)
        if not bool(torch.isfinite(w).all()) or float(w.abs().max()) == 0.0:
            raise ValueError(f"The probe weight at layer {layer} is zero or non-finite; re-fit the vector.")
        out[layer] = (w / w.norm() * scale[layer]).to(torch.float32).contiguous()
    return out


def export_gguf(vector: ValueVector, path: str | Path, strength: float | Mapping[int, float],
                layers: Sequence[int] | None = None, model_hint: str | None = None) -> Path:
    """Write ``vector`` at ``strength`` (one number, or one per layer) as a control-vector GGUF file, atomically.

    ``model_hint`` defaults to the vector's recorded ``model_type``, else its model name, else ``"unknown"``
    (llama.cpp ignores it; repeng reads it). The file is read back and checked before it is moved into place.

    Example:
        >>> export_gguf(vec, "out/power.gguf", strength={10: 6.0, 12: 8.0}, layers=[10, 12])
        PosixPath('out/power.gguf')
    """
    directions = control_directions(vector, strength, layers)
    hint = model_hint if model_hint is not None else str(vector.meta.get("model_type") or vector.meta.get("model_name")
                                                          or "unknown")
    if not isinstance(hint, str) or not hint.strip():
        raise ValueError(f"model_hint must be a non-empty string such as 'llama', got {model_hint!r}.")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass the path of the .gguf file to write.")
    check_output_path(path, "Control-vector file")  # a parent that is a file, or a folder not writable
    scale = _strengths(strength, list(directions))
    with atomic_path(path) as tmp:
        writer = gguf.GGUFWriter(tmp, ARCHITECTURE)
        try:
            writer.add_string(f"{ARCHITECTURE}.model_hint", hint)
            writer.add_uint32(f"{ARCHITECTURE}.layer_count", len(directions))
            writer.add_string("workbench.value", vector.value)
            writer.add_string("workbench.hook_site", str(vector.meta.get("hook_site", HOOK_SITE)))
            writer.add_array("workbench.strengths", [scale[layer] for layer in directions])
            for key in ("model_name", "model_fingerprint"):
                if isinstance(vector.meta.get(key), str) and vector.meta[key]:
                    writer.add_string(f"workbench.{key}", vector.meta[key])
            for layer, direction in directions.items():
                writer.add_tensor(f"direction.{layer}", direction.numpy())
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
        back = import_gguf(tmp)
        if back.layers != tuple(directions) or not all(torch.equal(back.directions[k], v) for k, v in directions.items()):
            raise ArtefactError(f"Reading {path} back gave other directions; nothing was written.")
    return path


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    f = reader.get_field(key)
    return None if f is None else f.contents()


def import_gguf(path: str | Path, model: Any | None = None) -> ControlVector:
    """Read a control-vector GGUF file (ours, repeng's or any llama.cpp one) into direction tensors.

    With ``model`` given, refuses a file of another width, with layers the model lacks, or recording
    another model's fingerprint. Damaged or foreign files raise :class:`~workbench.vectors.ArtefactError`.

    Example:
        >>> cv = import_gguf("power.gguf", model=model)
        >>> cv.layers, cv.meta["workbench.value"]
        ((10, 12), 'power')
    """
    path = Path(path)
    if path.is_dir():
        raise ArtefactError(f"{path} is a folder; pass the path of the .gguf file.")
    check_input_path(path, "Control-vector file", error=ArtefactError)  # missing, FIFO, link loop: said as such
    try:
        reader = gguf.GGUFReader(path)
        arch = _field(reader, "general.architecture")
        hint = _field(reader, f"{ARCHITECTURE}.model_hint")
        count = _field(reader, f"{ARCHITECTURE}.layer_count")
        meta = {k: _field(reader, k) for k in reader.fields if k.startswith("workbench.")}
        raw = [(t.name, t.tensor_type, int(t.n_elements), np.array(t.data, dtype=np.float32, copy=True)
                if t.tensor_type == gguf.GGMLQuantizationType.F32 else None) for t in reader.tensors]
    except Exception as err:  # the reader raises many error types on damaged input
        raise ArtefactError(f"{path} is not a readable GGUF file ({type(err).__name__}: {str(err)[:200]}). "
                            "Re-export it with export_gguf.") from None
    del reader
    if arch != ARCHITECTURE:
        raise ArtefactError(f"{path} is a GGUF file of architecture {str(arch)[:40]!r}, not a control vector "
                            f"({ARCHITECTURE!r}); is it a model file? Pass a file written by export_gguf or repeng.")
    directions: dict[int, torch.Tensor] = {}
    for name, kind, n, data in raw:
        match = _DIRECTION.fullmatch(name)
        if match is None:
            raise ArtefactError(f"{path}: tensor {name!r} is not named direction.N. The file is damaged; re-export it.")
        layer = int(match.group(1))
        if layer == 0:
            raise ArtefactError(f"{path}: direction.0 is invalid (llama.cpp refuses it: block 0's output cannot be "
                                "steered). Re-export without layer 0.")
        if data is None:
            raise ArtefactError(f"{path}: tensor {name!r} has type {getattr(kind, 'name', kind)}; control vectors are "
                                "float32. Re-export it.")
        if data.size != n or data.size == 0:
            raise ArtefactError(f"{path}: tensor {name!r} is cut short. The file is damaged; re-export it.")
        if not np.isfinite(data).all():
            raise ArtefactError(f"{path}: tensor {name!r} holds NaN or inf values. Re-export it.")
        directions[layer] = torch.from_numpy(data.reshape(-1))
    if not directions:
        raise ArtefactError(f"{path} holds no direction tensors. Re-export it.")
    widths = {int(d.shape[0]) for d in directions.values()}
    if len(widths) > 1:
        raise ArtefactError(f"{path}: direction tensors have different widths {sorted(widths)}. The file is damaged.")
    if count is not None and count != len(directions):
        raise ArtefactError(f"{path}: {ARCHITECTURE}.layer_count is {count} but the file holds {len(directions)} "
                            "direction tensors. The file is damaged; re-export it.")
    cv = ControlVector(dict(sorted(directions.items())), str(hint or ""), meta)
    if model is not None:
        _check_model(cv, model, path)
    return cv


def _check_model(cv: ControlVector, model: Any, path: Path) -> None:
    from workbench.model import fingerprint

    if cv.d_model != model.cfg.d_model:
        raise ArtefactError(f"{path} has directions of width {cv.d_model}; this model has d_model={model.cfg.d_model}. "
                            "Export the vector from a model of this family.")
    too_deep = [layer for layer in cv.layers if layer >= model.cfg.n_layers]
    if too_deep:
        raise ArtefactError(f"{path} steers layers {too_deep}, but this model has {model.cfg.n_layers} blocks.")
    recorded = cv.meta.get("workbench.model_fingerprint")
    if isinstance(recorded, str) and recorded != fingerprint(model):
        raise ArtefactError(f"{path} was exported from model {cv.meta.get('workbench.model_name')!r} (fingerprint "
                            f"{recorded}), not from this model. Re-export it from this model.")
