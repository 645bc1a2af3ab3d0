"""The PyTorch backend: the shift operators as forward hooks on decoder layers, and Hugging Face decoding.

TransformerLens' ``TransformerBridge.generate`` runs its own Python decoding loop. Here the same shift
operators as :func:`workbench.steering.steer` (:mod:`workbench.steering.shifts`: closed form, modes,
per-row gate mask, CAA and audit record) sit elsewhere and someone else drives the decoding:

- the hooks are ``register_forward_hook`` callbacks on the decoder layers. The bridge's
  ``blocks[L]`` *is* the module at ``original_model.model.layers[L]`` (for Llama/Qwen), and its
  output is exactly ``blocks.L.hook_resid_post``;
- decoding is Hugging Face's ``original_model.generate`` (greedy or sampled, KV cache, left padding).

Hooks are removed in a ``finally``, so an exception never leaves the model steered.
:func:`workbench.generation.generate` decodes this way on the weight-sharing
:func:`workbench.model.plain_twin`, which skips the bridge's per-module hook points.

Example:
    >>> twin = plain_twin(model)
    >>> ids, mask = tokenize(model, chat_texts(model, ["Should I take the promotion?"]))
    >>> with steer_layers(model, vec, p0=0.95, gate_open=[True], modules=plain_decoder_layers(twin)) as record:
    ...     new_tokens = generate_tokens(model, ids, mask, max_new_tokens=32, hf=twin)
    >>> record.for_row(0)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from workbench.constants import MAX_NEW_TOKENS
from workbench.model import decoder_layers
from workbench.steering.shifts import GateOpen, ShiftFn, SteeringRecord, prepare
from workbench.steering.spec import SteeringSpec, as_spec
from workbench.vectors import ValueVector

__all__ = ["generate_tokens", "steer_layers"]


def _forward_hook(fn: ShiftFn) -> Any:
    """A module forward hook applying ``fn`` to the hidden state (the output, or its first item)."""

    def hook(module: torch.nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook


@contextlib.contextmanager
def steer_layers(
    model: Any,
    vector: ValueVector | SteeringSpec,
    p0: float | None = None,
    gate_open: GateOpen = True,
    mode: str | None = None,
    layers: Sequence[int] | None = None,
    method: str | None = None,
    coef: float | None = None,
    modules: Sequence[torch.nn.Module] | None = None,
) -> Iterator[SteeringRecord]:
    """Like :func:`workbench.steering.steer`, but hooked on decoder layers with plain PyTorch hooks.

    ``modules`` are the decoder layers to hook: by default the bridge's blocks (then any forward
    through the wrapped model or the bridge is steered), or those of :func:`workbench.model.plain_twin`
    (``plain_decoder_layers(twin)``). Yields the :class:`SteeringRecord`.
    """
    spec = as_spec(vector, p0=p0, mode=mode, layers=layers, method=method, coef=coef)
    record, shifts = prepare(model, spec, gate_open)
    blocks = decoder_layers(model) if modules is None else modules
    if len(blocks) != model.cfg.n_layers:
        raise ValueError(f"Got {len(blocks)} decoder layers to hook; the model has {model.cfg.n_layers}.")
    handles = []
    try:
        for layer, fn in shifts.items():
            handles.append(blocks[layer].register_forward_hook(_forward_hook(fn)))
        yield record
    finally:
        for handle in handles:
            handle.remove()


def generate_tokens(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int = MAX_NEW_TOKENS,
    do_sample: bool = False,
    temperature: float = 1.0,
    eos_token_id: int | None = None,
    hf: Any = None,
) -> torch.Tensor:
    """New tokens ``[batch, <= max_new_tokens]`` from Hugging Face ``generate``.

    ``hf`` is the Hugging Face model that decodes: by default the bridge's wrapped model, or its
    :func:`workbench.model.plain_twin` (same weights, no wrapper overhead).

    Left-padded ``input_ids``/``attention_mask`` as :func:`workbench.activations.tokenize` makes
    them. Greedy unless ``do_sample``; sampling uses ``temperature`` only, as the bridge's
    ``generate`` does: the repetition penalty, n-gram blocking, top-k and top-p that a checkpoint's
    ``generation_config.json`` may set are switched off. Rows that finished early are filled with
    the pad token.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    tok = model.tokenizer
    eos = tok.eos_token_id if eos_token_id is None else eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "eos_token_id": eos,
                              "pad_token_id": pad, "use_cache": True, "repetition_penalty": 1.0,
                              "no_repeat_ngram_size": 0}
    if do_sample:
        kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
    with torch.no_grad():
        out = (model.original_model if hf is None else hf).generate(input_ids=input_ids, attention_mask=attention_mask,
                                                                     **kwargs)
    return out[:, input_ids.shape[1]:]
