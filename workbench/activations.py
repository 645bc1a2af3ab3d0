"""Batched last-token residual extraction: texts -> ``[n, layers, d_model]``.

Only the residual hooks that are asked for run, only the last real token of each text is kept
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from workbench.io import atomic_path, text_hash
from workbench.model import cache_dir, fingerprint, hook_name

__all__ = ["extract", "last_token_index", "tokenize"]


def tokenize(model: Any, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize with left padding; returns ``(input_ids, attention_mask)`` on the model's device.

    Texts longer than ``max_length`` (default: the model's context) are cut from the left with a warning.
    """
    if isinstance(texts, str):
        raise TypeError("Pass a list of texts, not a single string.")
    if len(texts) == 0:
        raise ValueError("No texts given: pass at least one text.")
    if any(not isinstance(t, str) or not t.strip() for t in texts):
        raise ValueError("Every text must be a non-empty string.")
    tok = model.tokenizer
    tok.padding_side = "left"
    limit = max_length or int(getattr(model.cfg, "n_ctx", 0) or 2048)
    enc = tok(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] > limit:
        import warnings

        warnings.warn(
            f"Some texts are longer than the context ({ids.shape[1]} > {limit} tokens); keeping the last {limit}.",
            stacklevel=2,
        )
        ids, mask = ids[:, -limit:], mask[:, -limit:]
    device = model.cfg.device
    return ids.to(device), mask.to(device)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real (mask == 1) token in each row, for any padding side."""
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), pos, -1).max(dim=1).values


def _extract_batch(model: Any, texts: Sequence[str], layers: Sequence[int]) -> torch.Tensor:
    ids, mask = tokenize(model, texts)
    rows = torch.arange(ids.shape[0], device=ids.device)
    last = last_token_index(mask)
    out: dict[int, torch.Tensor] = {}

    def make_hook(layer: int):
        def hook(resid: torch.Tensor, hook: Any) -> None:
            out[layer] = resid[rows, last].detach().float().cpu()

        return hook

    hooks = [(hook_name(layer), make_hook(layer)) for layer in layers]
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(ids, attention_mask=mask, stop_at_layer=max(layers) + 1)
    return torch.stack([out[layer] for layer in layers], dim=1)


def extract(
    model: Any,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    cache: bool | str | Path = False,
    progress: bool = True,
) -> Float[torch.Tensor, "n layers d_model"]:
    """Residual stream (``hook_resid_post``) at the last real token of each text, for each layer.

    ``cache=True`` (or a folder) keeps results on disk keyed by model fingerprint, layers and text
    hash, so repeated runs skip the model. Results are float32 on the CPU.
    """
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    if not layers:
        raise ValueError("layers is empty: pass None for all layers or a list of layer indices.")
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise ValueError(f"Layers {bad} out of range: this model has layers 0..{n_layers - 1}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    texts = list(texts)
    if not texts:
        raise ValueError("No texts given: pass at least one text.")

    path = None
    if cache:
        folder = Path(cache) if not isinstance(cache, bool) else cache_dir() / "activations"
        key = text_hash([fingerprint(model), json.dumps(layers), *texts])
        path = folder / f"{key}.safetensors"
        if path.is_file():
            try:
                return load_file(str(path))["acts"]
            except Exception:  # a damaged entry (e.g. from a killed run): rebuild it below
                path.unlink(missing_ok=True)

    # Sort by length so batches pad little; restore the original order at the end.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = []
    for start in tqdm(range(0, len(texts), batch_size), desc="extract", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        chunks.append(_extract_batch(model, [texts[i] for i in idx], layers))
    acts = torch.empty(len(texts), len(layers), model.cfg.d_model)
    acts[torch.tensor(order)] = torch.cat(chunks)

    if path is not None:
        with atomic_path(path) as tmp:
            save_file({"acts": acts.contiguous()}, str(tmp))
    return acts
