"""Batched last-token residual extraction: texts -> ``[n, layers, d_model]``.

Only the layers that are asked for are read, only the last real token of each text is kept
(left or right padding both handled through the attention mask), and the forward pass stops after
the deepest requested layer.

Example:
    >>> from workbench import load_model, extract
    >>> model = load_model()
    >>> acts = extract(model, ["I value my freedom.", "I follow the rules."])
    >>> acts.shape
    torch.Size([2, 30, 576])
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from workbench.io import atomic_path, text_hash
from workbench.model import cache_dir, decoder_layers, fingerprint, plain_decoder_layers, twin_unless_hooked

__all__ = ["extract", "last_token_index", "position_ids", "tokenize"]


def _check_texts(texts: Sequence[str]) -> None:
    """Refuse a bare string, an empty list, and blank, non-string or unencodable texts (naming the index)."""
    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string.")
    if len(texts) == 0:
        raise ValueError("No texts given: pass at least one text.")
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            got = f"{type(t).__name__}" if not isinstance(t, str) else "an empty or blank string"
            raise ValueError(f"Every text must be a non-empty string; text {i} is {got}.")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"Text {i} holds an invalid Unicode character (a lone surrogate such as '\\ud800'); "
                "fix the text or the file it came from."
            ) from None


def context_limit(model: Any) -> int:
    """The model's context length in tokens (2048 where the config does not say)."""
    return int(getattr(model.cfg, "n_ctx", 0) or 2048)


def tokenize(model: Any, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize with left padding; returns ``(input_ids, attention_mask)`` on the model's device.

    Texts longer than ``max_length`` (default: the model's context) are cut from the left with a warning.
    """
    _check_texts(texts)
    limit = int(max_length) if max_length is not None else context_limit(model)
    if limit < 1:
        raise ValueError(f"max_length must be >= 1 token, got {max_length}.")
    tok = model.tokenizer
    tok.padding_side = "left"
    enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] > limit:
        import warnings

        long_rows = (mask.sum(dim=1) > limit).nonzero().flatten().tolist()
        first = texts[long_rows[0]]
        warnings.warn(
            f"Some texts are longer than the context ({ids.shape[1]} > {limit} tokens); keeping the last {limit} "
            f"tokens of each ({len(long_rows)} text(s), the first starting {first[:40]!r}). "
            "Shorten them to keep their beginning.",
            stacklevel=2,
        )
        ids, mask = ids[:, -limit:], mask[:, -limit:]
    device = model.cfg.device
    return ids.to(device), mask.to(device)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real (mask == 1) token in each row, for any padding side."""
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), pos, -1).max(dim=1).values


class _Done(Exception):
    """Raised by the hook on the deepest requested layer: the rest of the forward pass is not needed."""


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Position ids under left padding: each row counts its real tokens only (as HF ``generate`` does)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _extract_batch(model: Any, texts: Sequence[str], layers: Sequence[int], twin: Any) -> torch.Tensor:
    """Last-token output of each requested decoder layer, i.e. ``blocks.L.hook_resid_post``.

    The fast path: plain PyTorch forward hooks on the decoder layers of the weight-sharing
    :func:`workbench.model.plain_twin` (no bridge wrappers), whose forward runs without the LM head
    and stops after the deepest requested layer. Inside a TransformerLens hook context the bridge's
    own ``blocks`` (the wrapped model's decoder layers) are hooked instead (``twin`` is None), so
    those hooks apply.
    Both equal the TransformerLens ``hook_resid_post`` path (``tests/test_activations.py``).
    """
    ids, mask = tokenize(model, texts)
    rows = torch.arange(ids.shape[0], device=ids.device)
    last = last_token_index(mask)
    out: dict[int, torch.Tensor] = {}
    deepest = max(layers)

    def make_hook(layer: int):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            resid = output[0] if isinstance(output, tuple) else output
            out[layer] = resid[rows, last].detach().float().cpu()
            if layer == deepest:
                raise _Done

        return hook

    base = (model.original_model if twin is None else twin).base_model
    blocks = decoder_layers(model) if twin is None else plain_decoder_layers(twin)
    handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in sorted(set(layers))]
    try:
        with torch.no_grad():
            base(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False)
    except _Done:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([out[layer] for layer in layers], dim=1)


def _layer_list(layers: Sequence[int] | int) -> list[int]:
    """Layer indices as plain ints; floats, bools and strings are refused rather than rounded."""
    items = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
    try:
        out = []
        for x in items:
            if isinstance(x, bool):
                raise TypeError
            out.append(operator.index(x))
        return out
    except TypeError:
        raise ValueError(f"Layers must be integer layer indices, got {layers!r}.") from None


def _read_cache_entry(path: Path, shape: tuple[int, int, int]) -> torch.Tensor | None:
    """A cached activation tensor, or None (with a warning) if the entry is damaged and must be rebuilt.

    A damaged entry (truncated by a killed run, overwritten, wrong shape or dtype, NaN) is never
    returned; the caller recomputes it and atomically replaces the file.
    """
    try:
        acts = load_file(str(path)).get("acts")
        problem = None
        if acts is None:
            problem = "no 'acts' tensor"
        elif tuple(acts.shape) != shape or acts.dtype != torch.float32:
            problem = f"shape {tuple(acts.shape)} / {acts.dtype}, expected {shape} / torch.float32"
        elif not bool(torch.isfinite(acts).all()):
            problem = "NaN or inf values"
    except Exception as err:  # any decoding failure means a damaged entry
        acts, problem = None, f"unreadable: {err}"
    if problem is None:
        return acts
    import warnings

    warnings.warn(f"Activation cache entry {path} is damaged ({problem}); recomputing it.", stacklevel=3)
    return None


def extract(
    model: Any,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    cache: bool | str | Path = False,
    progress: bool = True,
    twin: Any | None = None,
) -> Float[torch.Tensor, "n layers d_model"]:
    """Residual stream (``hook_resid_post``) at the last real token of each text, for each layer.

    ``cache=True`` (or a folder) keeps results on disk keyed by model fingerprint, layers and text
    hash, so repeated runs skip the model. Results are float32 on the CPU. ``twin``: a prebuilt
    ``twin_unless_hooked(model)`` to reuse (else one is built for this call).
    """
    n_layers = model.cfg.n_layers
    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string.")
    layers = list(range(n_layers)) if layers is None else _layer_list(layers)
    if not layers:
        raise ValueError("layers is empty: pass None for all layers or a list of layer indices.")
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ValueError(f"Layers {bad} out of range: this model has layers 0..{n_layers - 1}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    texts = list(texts)
    _check_texts(texts)

    path = None
    if cache:
        folder = Path(cache) if not isinstance(cache, bool) else cache_dir() / "activations"
        key = text_hash([fingerprint(model), json.dumps(layers), *texts])
        path = folder / f"{key}.safetensors"
        if path.is_file():
            cached = _read_cache_entry(path, (len(texts), len(layers), int(model.cfg.d_model)))
            if cached is not None:
                return cached

    # Sort by length so batches pad little; restore the original order at the end.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    if twin is None:
        twin = twin_unless_hooked(model)  # built once per call: its construction is not free
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="extract", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        chunks.append(_extract_batch(model, [texts[i] for i in idx], layers, twin))
    acts = torch.empty(len(texts), len(layers), model.cfg.d_model)
    acts[torch.tensor(order)] = torch.cat(chunks)

    if path is not None:
        with atomic_path(path) as tmp:
            save_file({"acts": acts.contiguous()}, str(tmp))
    return acts
