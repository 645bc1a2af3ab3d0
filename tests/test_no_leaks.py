"""Exceptions anywhere in steering, generation or gate scoring leave the model exactly as it was.

Checked after each provoked failure: no hook on any module (hook points and the wrapped Hugging Face
modules alike), the hook-context depth back to its start, grad mode and tokenizer settings restored,
and a plain forward pass bit-identical to one taken before (no shift state survives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch
from helpers import all_hooks, count_hooks, synthetic_vector

import workbench.steering.shifts
from workbench.activations import extract, tokenize
from workbench.gate import Gate
from workbench.generation import generate
from workbench.model import fingerprint, hook_name, model_info
from workbench.steering import steer
from workbench.vectors import ValueVector

PROMPTS = ["hello there", "a longer prompt about values and choices"]


def clean_logits(model) -> torch.Tensor:
    ids, mask = tokenize(model, PROMPTS)
    with torch.no_grad():
        return model(ids, attention_mask=mask)


@contextmanager
def unchanged(model) -> Iterator[None]:
    """Assert that the block (which is expected to raise) leaves no trace on ``model``."""
    logits = clean_logits(model)  # first: the bridge adds its own permanent hooks on its first forward pass
    before = (all_hooks(model), count_hooks(model), getattr(model, "context_level", 0), torch.is_grad_enabled(),
              model.tokenizer.padding_side, model.training)
    yield
    after = (all_hooks(model), count_hooks(model), getattr(model, "context_level", 0), torch.is_grad_enabled(),
             model.tokenizer.padding_side, model.training)
    assert after == before
    assert torch.equal(clean_logits(model), logits)


def failing_on_call(k: int, error: BaseException) -> Callable:
    """A stand-in for closed_form_eps that works k-1 times, then raises ``error`` (a hook failing mid-way)."""
    real = workbench.steering.shifts.closed_form_eps
    calls = {"n": 0}

    def fn(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= k:
            raise error
        return real(*args, **kwargs)

    return fn


def broken_vector(model) -> ValueVector:
    """A vector whose steering layer 2 has no direction: its hook raises inside the forward pass."""
    vec = synthetic_vector(model)
    weight = vec.weight.clone()
    weight[2] = 0.0
    return ValueVector(vec.value, weight, vec.bias, vec.mean_diff, vec.train_acc, vec.test_acc, vec.layers, {})


# ---------------------------------------------------------------- steer()


@pytest.mark.parametrize("error", [RuntimeError("user code failed"), KeyboardInterrupt()])
def test_exception_in_the_steer_block(tiny_model, error):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, PROMPTS)
    with unchanged(tiny_model), pytest.raises(type(error)), steer(tiny_model, vec, p0=0.95):
        with torch.no_grad():
            tiny_model(ids, attention_mask=mask)
        raise error


@pytest.mark.parametrize("mode", ["prompt-once", "per-step"])
def test_hook_raising_inside_the_forward_pass(tiny_model, mode):
    ids, mask = tokenize(tiny_model, PROMPTS)
    with unchanged(tiny_model), pytest.raises(ValueError, match="all zeros"), \
            steer(tiny_model, broken_vector(tiny_model), mode=mode), torch.no_grad():
        tiny_model(ids, attention_mask=mask)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"p0": 1.5}, "p0 must be a probability"), ({"layers": [99]}, "invalid"), ({"mode": "always"}, "Unknown mode"),
     ({"method": "magic"}, "Unknown method"), ({"layers": [-1]}, "invalid")],
)
def test_bad_steer_arguments_register_nothing(tiny_model, kwargs, message):
    with unchanged(tiny_model), pytest.raises(ValueError, match=message), \
            steer(tiny_model, synthetic_vector(tiny_model), **kwargs):
        pass


def test_vector_of_another_width_registers_nothing(tiny_model):
    n = tiny_model.cfg.n_layers
    vec = ValueVector("power", torch.ones(n, 8), torch.zeros(n), torch.zeros(n, 8), torch.ones(n), torch.ones(n), (1,), {})
    with unchanged(tiny_model), pytest.raises(ValueError, match="Probe this model instead"), steer(tiny_model, vec):
        pass


def test_gate_mask_of_the_wrong_size_fails_in_the_hook_and_cleans_up(tiny_model):
    ids, mask = tokenize(tiny_model, PROMPTS)
    with unchanged(tiny_model), pytest.raises(ValueError, match="gate_open has 3 entries"), \
            steer(tiny_model, synthetic_vector(tiny_model), gate_open=[True, False, True]), torch.no_grad():
        tiny_model(ids, attention_mask=mask)


# ---------------------------------------------------------------- generate()


@pytest.mark.parametrize(("mode", "fail_at"), [("prompt-once", 2), ("per-step", 5)])
def test_generate_with_a_hook_failing_mid_way(tiny_model, monkeypatch, mode, fail_at):
    """prompt-once: the second layer's hook fails on the prompt pass; per-step: a hook fails on a decode step."""
    monkeypatch.setattr(workbench.steering.shifts, "closed_form_eps", failing_on_call(fail_at, RuntimeError("hook died")))
    with unchanged(tiny_model), pytest.raises(RuntimeError, match="hook died"):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), method="conva-nogate", mode=mode,
                 max_new_tokens=6)


def test_generate_failing_in_a_later_batch(tiny_model, monkeypatch):
    """The first batch completes (hooks added and removed), the second fails half-way."""
    monkeypatch.setattr(workbench.steering.shifts, "closed_form_eps", failing_on_call(3, KeyboardInterrupt()))
    with unchanged(tiny_model), pytest.raises(KeyboardInterrupt):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), method="conva-nogate", batch_size=1,
                 max_new_tokens=4)


def test_generate_with_a_broken_vector(tiny_model):
    with unchanged(tiny_model), pytest.raises(ValueError, match="finite and non-zero"):
        generate(tiny_model, PROMPTS, vector=broken_vector(tiny_model), method="conva-nogate", max_new_tokens=4)


def test_generate_with_a_bad_argument_found_after_generation(tiny_model):
    """stop_strings is only used after the tokens are generated, still inside the steering block."""
    with unchanged(tiny_model), pytest.raises(TypeError):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), method="conva-nogate", max_new_tokens=3,
                 stop_strings=[None])


def test_generate_when_another_hook_of_the_user_fails(tiny_model):
    """A user's own hook raises on the third forward pass while generate() is steering."""
    passes = {"n": 0}

    def user_hook(resid, hook):
        passes["n"] += 1
        if passes["n"] == 3:
            raise RuntimeError("user hook failed")

    with unchanged(tiny_model), pytest.raises(RuntimeError, match="user hook failed"), \
            tiny_model.hooks(fwd_hooks=[(hook_name(0), user_hook)]):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), method="caa", max_new_tokens=6)


@pytest.mark.parametrize("method", ["conva-nogate", "caa", "none"])
def test_generate_interrupted_by_the_tokenizer(tiny_model, monkeypatch, method):
    """A failure in decoding the answer (after generation, inside the steering block)."""

    def broken_decode(*args, **kwargs):
        raise RuntimeError("decode failed")

    monkeypatch.setattr(tiny_model.tokenizer, "decode", broken_decode)
    with unchanged(tiny_model), pytest.raises(RuntimeError, match="decode failed"):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), method=method, max_new_tokens=3)


# ---------------------------------------------------------------- gate scoring


def residual_gate(model, layer: int = 1) -> Gate:
    meta = {**model_info(model), "model_fingerprint": fingerprint(model)}
    return Gate("power", "residual", torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0)),
                0.0, 0.5, layer, meta)


def test_gate_scoring_failing_inside_the_forward_pass(tiny_model):
    def explode(resid, hook):
        raise RuntimeError("forward failed")

    gate = residual_gate(tiny_model)
    with unchanged(tiny_model), pytest.raises(RuntimeError, match="forward failed"), \
            tiny_model.hooks(fwd_hooks=[(hook_name(0), explode)]):
        gate.score(PROMPTS, tiny_model)


def test_gate_with_a_layer_the_model_lacks(tiny_model):
    with unchanged(tiny_model), pytest.raises(ValueError, match="out of range"):
        residual_gate(tiny_model, layer=99).score(PROMPTS, tiny_model)


def test_generate_when_gate_scoring_fails(tiny_model, monkeypatch):
    gate = residual_gate(tiny_model)

    def broken_score(texts, model=None):
        raise RuntimeError("gate failed")

    monkeypatch.setattr(Gate, "score", lambda self, texts, model=None, twin=None: broken_score(texts, model))  # Gate is frozen
    with unchanged(tiny_model), pytest.raises(RuntimeError, match="gate failed"):
        generate(tiny_model, PROMPTS, vector=synthetic_vector(tiny_model), gate=gate, method="conva", max_new_tokens=3)


def test_extract_failing_in_a_later_batch(tiny_model):
    passes = {"n": 0}

    def fail_second_batch(resid, hook):
        passes["n"] += 1
        if passes["n"] == 2:
            raise RuntimeError("second batch failed")

    with unchanged(tiny_model), pytest.raises(RuntimeError, match="second batch failed"), \
            tiny_model.hooks(fwd_hooks=[(hook_name(0), fail_second_batch)]):
        extract(tiny_model, PROMPTS * 2, batch_size=2, progress=False)
