"""The plain twin: an unwrapped Hugging Face model sharing every weight tensor with a bridge.

Decoding and extraction run on it (no per-module hook-point overhead); steering on it goes through
:mod:`workbench.fastpath` (PyTorch forward hooks on :func:`plain_decoder_layers`).

Example:
    >>> twin = twin_unless_hooked(model)      # None inside a TransformerLens hook context
    >>> len(plain_decoder_layers(twin)) == model.cfg.n_layers
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["plain_decoder_layers", "plain_twin", "twin_unless_hooked"]


def plain_twin(model: Any) -> Any:
    """An unwrapped Hugging Face model that shares every weight tensor with the bridge's wrapped model.

    The bridge wraps each submodule with hook points, which costs Python overhead on every token of
    a decoding loop. The twin is built on the meta device and takes the bridge's tensors by
    reference (``load_state_dict(assign=True)``): no weights are copied, and its outputs equal the
    bridge's. Steering on it goes through :mod:`workbench.fastpath` (PyTorch forward hooks on
    :func:`plain_decoder_layers`). Raises ``TypeError`` where the architecture is not supported.
    """
    from transformers import AutoModelForCausalLM

    wrapped = model.original_model
    state: dict[str, torch.Tensor] = {}
    for key, tensor in wrapped.state_dict(keep_vars=True).items():
        state.setdefault(key.replace("._original_component", ""), tensor)
    with torch.device("meta"):
        twin = AutoModelForCausalLM.from_config(wrapped.config)
    result = twin.load_state_dict(state, strict=False, assign=True)
    rotary = getattr(getattr(wrapped, "model", None), "rotary_emb", None)
    if rotary is not None:  # its buffers are not in the state dict: reuse the wrapped module
        twin.model.rotary_emb = getattr(rotary, "_original_component", rotary)
    meta = [n for n, t in [*twin.named_parameters(), *twin.named_buffers()] if t.device.type == "meta"]
    if result.missing_keys or meta:
        raise TypeError(f"Cannot build an unwrapped twin of this {type(wrapped).__name__}: "
                        f"{(result.missing_keys or meta)[:3]} have no tensor in the bridge.")
    twin.generation_config = wrapped.generation_config
    return twin.eval()


def twin_unless_hooked(model: Any) -> Any:
    """:func:`plain_twin`, or None where work must go through the bridge.

    That is when the caller has hooks on the bridge (TransformerLens hooks inside ``steer``,
    ``steer_profile`` or ``model.hooks``, or PyTorch hooks on its blocks), which the twin would not
    run, or when the architecture has no twin.
    """
    hooked = [*model.hook_dict.values(), *getattr(model, "blocks", ())]  # hook points, and blocks hooked directly
    if any(module._forward_hooks for module in hooked):
        return None
    try:
        return plain_twin(model)
    except TypeError:
        return None


def plain_decoder_layers(hf: Any) -> Sequence[torch.nn.Module]:
    """The decoder layers of a plain Hugging Face causal LM (Llama/Qwen/Mistral/Gemma or GPT-2 layout)."""
    for path in (("model", "layers"), ("transformer", "h")):
        node = hf
        for attr in path:
            node = getattr(node, attr, None)
        if node is not None:
            return node
    raise TypeError(f"No decoder layers found on {type(hf).__name__} (looked for model.layers and transformer.h).")
