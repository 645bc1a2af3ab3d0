"""Batched (steered) generation with the chat template, left padding, KV cache and an audit per prompt.

Steering settings travel as one :class:`workbench.steering.SteeringSpec`; methods are the records of
:mod:`workbench.methods`: ``none`` (plain model), ``prompt`` (ICA: "You have a high level of V. <definition>" as the
system prompt), ``caa`` (fixed-coefficient mean-difference addition on the vector's layers),
``conva`` (closed-form shift behind the gate) and ``conva-nogate`` (closed form, gate ignored).
ConVA on vectors from the non-controlled pairs is ``conva`` with such a vector.

Example:
    >>> out = generate(model, ["Should I take the promotion?"], SteeringSpec("conva", vector=vec, gate=gate))
    >>> out.texts[0], out.audits[0].fired
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from workbench.activations import tokenize
from workbench.chat_template import chat_texts, escape_special_tokens
from workbench.constants import MAX_NEW_TOKENS
from workbench.gate import Gate
from workbench.methods import GENERATION_METHODS
from workbench.model import plain_decoder_layers, twin_unless_hooked
from workbench.steering import SteeringSpec, as_spec, generate_tokens, steer, steer_layers
from workbench.values import get_value, is_known_value, value_name
from workbench.vectors import ValueVector

__all__ = ["GENERATION_METHODS", "GenerationResult", "PromptAudit", "chat_texts", "gate_scores", "generate",
           "high_value_prompt"]



@dataclass(frozen=True)
class PromptAudit:
    """What happened to one prompt: gate score, whether steering fired, and per-layer P_V and eps."""

    gate_score: float | None
    fired: bool
    layers: tuple[dict[str, float], ...]


@dataclass(frozen=True)
class GenerationResult:
    """The answers, in prompt order, what steering did to each, and the new token ids of each row
    (``max_new_tokens`` or fewer; a row that ended early is filled with the pad token)."""

    texts: tuple[str, ...]
    audits: tuple[PromptAudit, ...]
    tokens: tuple[tuple[int, ...], ...] = ()

    def to_frame(self) -> Any:
        """One row a prompt: ``text``, ``gate_score``, ``fired``, ``n_layers`` (layers that shifted) and
        ``max_eps``, as a pandas DataFrame.

        Example:
            >>> generate(model, prompts, vector=vec, gate=gate).to_frame()
        """
        from workbench.tables import require_pandas

        return require_pandas().DataFrame({
            "text": list(self.texts),
            "gate_score": [a.gate_score for a in self.audits],
            "fired": [a.fired for a in self.audits],
            "n_layers": [sum(float(r.get("eps", 0.0)) > 0 for r in a.layers) for a in self.audits],
            "max_eps": [max((float(r.get("eps", 0.0)) for r in a.layers), default=0.0) for a in self.audits],
        })


def high_value_prompt(value: str, level: str = "high") -> str:
    """The ICA system prompt: "You have a <level> level of <value>. <definition>" (no definition for a
    concept of your own: "You have a high level of honesty.")."""
    if not is_known_value(value):
        return f"You have a {level} level of {value_name(value)}."
    v = get_value(value)
    return f"You have a {level} level of {v.name}. {v.definition}"


def gate_scores(model: Any, gate: Gate, prompts: Sequence[str], *, allow_special_tokens: bool = False,
                twin: Any | None = None) -> torch.Tensor:
    """g(x) for each prompt, as :func:`generate` reads it (control-token strings escaped unless allowed)."""
    texts = prompts if allow_special_tokens else [escape_special_tokens(p, model.tokenizer) for p in prompts]
    return gate.score(texts, model, twin=twin)


def _cut(text: str, stop_strings: Sequence[str]) -> str:
    for s in stop_strings:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text.strip()


def _bridge_tokens(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int, do_sample: bool,
                   temperature: float) -> torch.Tensor:
    """New tokens from TransformerLens' own decoding loop (fires any hooks on the bridge)."""
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
                             temperature=temperature, verbose=False, return_type="tokens",
                             eos_token_id=model.tokenizer.eos_token_id, use_past_kv_cache=True)
    return out[:, ids.shape[1]:]


def _decode(model: Any, new_tokens: torch.Tensor, stop_strings: Sequence[str]) -> list[str]:
    eos = model.tokenizer.eos_token_id
    texts = []
    for row in new_tokens:
        tokens = row.tolist()
        if eos in tokens:
            tokens = tokens[: tokens.index(eos)]
        texts.append(_cut(model.tokenizer.decode(tokens, skip_special_tokens=True), stop_strings))
    return texts


def generate(
    model: Any,
    prompts: Sequence[str],
    spec: SteeringSpec | ValueVector | None = None,
    *,
    vector: ValueVector | None = None,
    method: str | None = None,
    p0: float | None = None,
    gate: Gate | None = None,
    g0: float | None = None,
    mode: str | None = None,
    layers: Sequence[int] | None = None,
    coef: float | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    stop_strings: Sequence[str] = (),
    batch_size: int = 8,
    allow_special_tokens: bool = False,
) -> GenerationResult:
    """Generate answers to ``prompts`` (chat template applied), steered as ``spec`` says.

    ``spec`` is a :class:`workbench.steering.SteeringSpec`; the keyword settings (``vector``,
    ``method``, ``p0``, ``gate``, ``g0``, ``mode``, ``layers``, ``coef``) build one instead, and unset
    ones are resolved by :func:`workbench.steering.resolve_spec` (P0 and the CAA coefficient from the
    value's swept defaults). The method defaults to ``"conva"`` with a vector and ``"none"`` without;
    ``"conva"`` needs a gate, and rows where it stays closed are generated exactly as by the unsteered
    model. Returns the answers, the new tokens and, per prompt, a :class:`PromptAudit`. Control-token
    strings in the prompts are read as text (:mod:`workbench.chat_template`) unless ``allow_special_tokens``.

    Decoding is Hugging Face ``generate`` (KV cache) on :func:`workbench.model.plain_twin`, steered
    by the same shift operators as :func:`workbench.steering.steer` (:mod:`workbench.steering.torch_hooks`;
    ``tests/test_fastpath.py`` proves the two paths equal). Called inside a TransformerLens hook
    context (``steer``, ``steer_profile``, ``model.hooks``), it decodes through the bridge instead,
    so those hooks apply; a prompt-once block computes its shift on its first prompt pass, so keep
    ``batch_size >= len(prompts)`` there, or open one block per batch.

    Example:
        >>> spec = SteeringSpec("conva", vector=vec, gate=gate)
        >>> out = generate(model, ["Should I take the promotion?"], spec, max_new_tokens=32)
        >>> out.texts[0], out.tokens[0][:4], out.audits[0].fired
    """
    if isinstance(prompts, str):
        raise TypeError("Pass a list of prompts, not a single string.")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("No prompts given: pass at least one prompt.")
    spec = as_spec(spec, vector=vector, method=method, p0=p0, gate=gate, g0=g0, mode=mode, layers=layers,
                   coef=coef).resolve(model)
    kind = spec.kind
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if isinstance(n_ctx, int) and max_new_tokens > n_ctx:
        raise ValueError(f"max_new_tokens={max_new_tokens} exceeds the model's context of {n_ctx} tokens (prompt and "
                         f"answer together must fit in it). Pass at most {n_ctx}, e.g. 48 for short answers.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if isinstance(stop_strings, str):
        stop_strings = (stop_strings,)
    if kind.system_prompt:
        value_prompt = high_value_prompt(spec.vector.value)
        system_prompt = f"{value_prompt} {system_prompt}" if system_prompt else value_prompt

    twin = twin_unless_hooked(model)  # same weights, no wrapper overhead; built once, shared with the gate
    scores = gate_scores(model, spec.gate, prompts, allow_special_tokens=allow_special_tokens, twin=twin) \
        if kind.uses_gate else None
    chats = chat_texts(model, prompts, system_prompt, allow_special_tokens=allow_special_tokens)
    texts: list[str] = []
    tokens: list[tuple[int, ...]] = []
    audits: list[PromptAudit] = []
    for start in range(0, len(prompts), batch_size):
        rows = slice(start, start + batch_size)
        if kind.shift is None:
            opened = [False] * len(chats[rows])
            ctx: Any = contextlib.nullcontext(None)
        else:
            opened = (scores[rows] > spec.g0).tolist() if scores is not None else [True] * len(chats[rows])
            ctx = steer(model, spec, gate_open=opened) if twin is None else \
                steer_layers(model, spec, gate_open=opened, modules=plain_decoder_layers(twin))
        ids, mask = tokenize(model, chats[rows])
        with torch.random.fork_rng(devices=[]), ctx as record:  # seeded sampling leaves the caller's RNG alone
            torch.manual_seed(seed + start)
            new = _bridge_tokens(model, ids, mask, max_new_tokens, do_sample, temperature) if twin is None else \
                generate_tokens(model, ids, mask, max_new_tokens, do_sample, temperature, hf=twin)
        texts += _decode(model, new, stop_strings)
        tokens += [tuple(row) for row in new.tolist()]
        for i, is_open in enumerate(opened):
            score = None if scores is None else float(scores[start + i])
            per_layer = tuple(record.for_row(i)) if record is not None and kind.shift == "conva" else ()
            audits.append(PromptAudit(score, bool(is_open), per_layer))
    return GenerationResult(tuple(texts), tuple(audits), tuple(tokens))
