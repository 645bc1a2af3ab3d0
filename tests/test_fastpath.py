"""The fast path (Hugging Face generate + PyTorch hooks on decoder layers) equals the TransformerLens hook path."""

import contextlib
import math

import pytest
import torch
from helpers import PROMPTS, synthetic_vector

from workbench.activations import tokenize
from workbench.fastpath import generate_tokens, steer_layers
from workbench.generation import chat_texts
from workbench.model import decoder_layers, hook_name, plain_decoder_layers, plain_twin
from workbench.steering import steer
from workbench.vectors import ValueVector

CASES = [  # (method, mode, gate_open)
    ("conva", "prompt-once", True),
    ("conva", "per-step", True),
    ("conva", "prompt-once", [True, False, True]),
    ("conva", "per-step", [False, True, False]),
    ("caa", "prompt-once", [True, False, True]),
]


def n_forward_hooks(model) -> int:
    return sum(len(block._forward_hooks) for block in decoder_layers(model))


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids for left padding, as Hugging Face generate and the bridge derive them."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@contextlib.contextmanager
def tl_capture(model, layers):
    """Residuals ``blocks.L.hook_resid_post`` of every forward pass (after any steering hooks)."""
    seen = {layer: [] for layer in layers}

    def grab(layer):
        def hook(x, hook):
            seen[layer].append(x.detach().clone())
        return hook

    with model.hooks(fwd_hooks=[(hook_name(layer), grab(layer)) for layer in layers]):
        yield seen


@contextlib.contextmanager
def layer_capture(model, layers):
    """Decoder-layer outputs of every forward pass (registered last, so after any steering hooks)."""
    seen = {layer: [] for layer in layers}
    blocks = decoder_layers(model)

    def grab(layer):
        def hook(module, args, out):
            seen[layer].append((out[0] if isinstance(out, tuple) else out).detach().clone())
        return hook

    handles = [blocks[layer].register_forward_hook(grab(layer)) for layer in layers]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def assert_same_record(fast, slow):
    assert fast.gate_open == slow.gate_open
    assert [r.layer for r in fast.layers] == [r.layer for r in slow.layers]
    for a, b in zip(fast.layers, slow.layers, strict=True):
        for field in ("eps", "p_before", "p_after"):
            for x, y in zip(getattr(a, field), getattr(b, field), strict=True):
                assert math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5), (a.layer, field, x, y)


def test_decoder_layer_output_is_hook_resid_post(tiny_model):
    n = tiny_model.cfg.n_layers
    assert all(decoder_layers(tiny_model)[i] is tiny_model.original_model.model.layers[i] for i in range(n))
    ids, mask = tokenize(tiny_model, PROMPTS)
    with torch.no_grad(), tl_capture(tiny_model, range(n)) as tl, layer_capture(tiny_model, range(n)) as plain:
        tiny_model(ids, attention_mask=mask)  # bridge forward
        tiny_model.original_model(input_ids=ids, attention_mask=mask, position_ids=positions(mask))  # HF forward
    for layer in range(n):
        assert len(tl[layer]) == len(plain[layer]) == 2
        for a, b in zip(tl[layer], plain[layer], strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize(("method", "mode", "gate_open"), CASES)
def test_prompt_pass_residuals_and_record_equal(tiny_model, method, mode, gate_open):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, PROMPTS)
    kw = {"p0": 0.99, "mode": mode, "gate_open": gate_open, "method": method, "coef": 3.0}
    with torch.no_grad():
        with steer(tiny_model, vec, **kw) as slow_rec, tl_capture(tiny_model, vec.layers) as slow:
            slow_logits = tiny_model(ids, attention_mask=mask)
        with steer_layers(tiny_model, vec, **kw) as fast_rec, layer_capture(tiny_model, vec.layers) as fast:
            fast_logits = tiny_model.original_model(input_ids=ids, attention_mask=mask,
                                                    position_ids=positions(mask)).logits
    real = mask.bool()
    for layer in vec.layers:
        assert torch.allclose(fast[layer][0][real], slow[layer][0][real], atol=1e-5, rtol=0)
    assert torch.allclose(fast_logits[real], slow_logits[real], atol=1e-4, rtol=0)
    assert_same_record(fast_rec, slow_rec)
    if method == "conva":
        assert any(e > 0 for r in fast_rec.layers for e in r.eps)


@pytest.mark.parametrize(("method", "mode", "gate_open"), CASES)
def test_generation_tokens_residuals_and_record_equal(tiny_model, method, mode, gate_open):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, chat_texts(tiny_model, PROMPTS))
    eos = tiny_model.tokenizer.eos_token_id
    kw = {"p0": 0.99, "mode": mode, "gate_open": gate_open, "method": method, "coef": 3.0}
    with torch.no_grad():
        with steer(tiny_model, vec, **kw) as slow_rec, tl_capture(tiny_model, vec.layers) as slow:
            slow_out = tiny_model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, verbose=False,
                                           return_type="tokens", eos_token_id=eos, use_past_kv_cache=True)
        with steer_layers(tiny_model, vec, **kw) as fast_rec, layer_capture(tiny_model, vec.layers) as fast:
            fast_new = generate_tokens(tiny_model, ids, mask, max_new_tokens=8)
        plain_new = generate_tokens(tiny_model, ids, mask, max_new_tokens=8)
    slow_new = slow_out[:, ids.shape[1]:]
    assert torch.equal(fast_new, slow_new)
    real = mask.bool()
    for layer in vec.layers:
        assert len(fast[layer]) == len(slow[layer]) == slow_new.shape[1]
        assert torch.allclose(fast[layer][0][real], slow[layer][0][real], atol=1e-5, rtol=0)
        for a, b in zip(fast[layer][1:], slow[layer][1:], strict=True):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert_same_record(fast_rec, slow_rec)
    opened = torch.as_tensor(gate_open, dtype=torch.bool).expand(len(PROMPTS))
    for row, is_open in enumerate(opened.tolist()):
        if not is_open:  # a closed row is generated exactly as by the unsteered model
            assert torch.equal(fast_new[row], plain_new[row])
    assert not torch.equal(fast_new[opened], plain_new[opened])  # steering changed the open rows


def test_generate_tokens_equals_bridge_generate_unsteered(tiny_model):
    ids, mask = tokenize(tiny_model, chat_texts(tiny_model, PROMPTS))
    eos = tiny_model.tokenizer.eos_token_id
    with torch.no_grad():
        slow = tiny_model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, verbose=False,
                                   return_type="tokens", eos_token_id=eos, use_past_kv_cache=True)
    assert torch.equal(generate_tokens(tiny_model, ids, mask, max_new_tokens=8), slow[:, ids.shape[1]:])


def test_checkpoint_generation_defaults_do_not_leak_in(tiny_model):
    """A generation_config.json with a repetition penalty (as chat checkpoints ship) must not change greedy tokens."""
    ids, mask = tokenize(tiny_model, chat_texts(tiny_model, PROMPTS))
    plain = generate_tokens(tiny_model, ids, mask, max_new_tokens=8)
    config = tiny_model.original_model.generation_config
    saved = (config.repetition_penalty, config.no_repeat_ngram_size)
    config.repetition_penalty, config.no_repeat_ngram_size = 1.5, 2
    try:
        assert torch.equal(generate_tokens(tiny_model, ids, mask, max_new_tokens=8), plain)
    finally:
        config.repetition_penalty, config.no_repeat_ngram_size = saved


def test_hooks_removed_on_exit_and_on_error(tiny_model):
    vec = synthetic_vector(tiny_model)
    before = n_forward_hooks(tiny_model)
    with steer_layers(tiny_model, vec):
        assert n_forward_hooks(tiny_model) == before + len(vec.layers)
    assert n_forward_hooks(tiny_model) == before
    with pytest.raises(RuntimeError, match="boom"), steer_layers(tiny_model, vec):
        raise RuntimeError("boom")
    assert n_forward_hooks(tiny_model) == before


def test_bad_arguments(tiny_model):
    vec = synthetic_vector(tiny_model)
    n, before = vec.n_layers, n_forward_hooks(tiny_model)
    narrow = ValueVector("power", torch.randn(n, 8), vec.bias, torch.randn(n, 8), vec.train_acc, vec.test_acc, (1,), {})
    with pytest.raises(ValueError, match="d_model"), steer_layers(tiny_model, narrow):
        pass
    for kwargs, message in [({"p0": 1.0}, "p0"), ({"mode": "sometimes"}, "Unknown mode"), ({"layers": [99]}, "invalid")]:
        with pytest.raises(ValueError, match=message), steer_layers(tiny_model, vec, **kwargs):
            pass
    assert n_forward_hooks(tiny_model) == before
    ids, mask = tokenize(tiny_model, PROMPTS)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_tokens(tiny_model, ids, mask, max_new_tokens=0)


def test_plain_twin_shares_the_weights_and_gives_the_bridge_logits(tiny_model):
    twin = plain_twin(tiny_model)
    assert not any(hasattr(m, "_original_component") for m in twin.modules())  # no bridge wrappers
    q_twin = plain_decoder_layers(twin)[0].self_attn.q_proj.weight
    q_bridge = dict(tiny_model.original_model.named_parameters())[
        "model.layers.0._original_component.self_attn._original_component.q_proj._original_component.weight"]
    assert q_twin.data_ptr() == q_bridge.data_ptr()  # shared, not copied
    ids, mask = tokenize(tiny_model, PROMPTS)
    with torch.no_grad():
        got = twin(input_ids=ids, attention_mask=mask, position_ids=positions(mask)).logits
        want = tiny_model(ids, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("method", "mode", "gate_open"), CASES)
def test_twin_generation_equals_the_transformer_lens_path(tiny_model, method, mode, gate_open):
    vec = synthetic_vector(tiny_model)
    twin = plain_twin(tiny_model)
    ids, mask = tokenize(tiny_model, chat_texts(tiny_model, PROMPTS))
    eos = tiny_model.tokenizer.eos_token_id
    kw = {"p0": 0.99, "mode": mode, "gate_open": gate_open, "method": method, "coef": 3.0}
    with torch.no_grad():
        with steer(tiny_model, vec, **kw) as slow_rec:
            slow = tiny_model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, verbose=False,
                                       return_type="tokens", eos_token_id=eos, use_past_kv_cache=True)
        with steer_layers(tiny_model, vec, modules=plain_decoder_layers(twin), **kw) as fast_rec:
            fast = generate_tokens(tiny_model, ids, mask, max_new_tokens=8, hf=twin)
    assert torch.equal(fast, slow[:, ids.shape[1]:])
    assert_same_record(fast_rec, slow_rec)


def test_generate_goes_through_the_bridge_inside_a_transformer_lens_hook_context(tiny_model):
    """generate() on the twin equals generate() under the caller's own steer() context (bridge path)."""
    from workbench.generation import generate
    from workbench.multi import steer_profile

    vec = synthetic_vector(tiny_model)
    fast = generate(tiny_model, PROMPTS, vector=vec, method="conva-nogate", p0=0.99, max_new_tokens=8)
    with steer(tiny_model, vec, p0=0.99):
        through_bridge = generate(tiny_model, PROMPTS, method="none", max_new_tokens=8)
    assert fast.texts == through_bridge.texts
    plain = generate(tiny_model, PROMPTS, method="none", max_new_tokens=8)
    with steer_profile(tiny_model, {"power": vec}, {"power": 0.99}):  # hooks the twin would not run
        profiled = generate(tiny_model, PROMPTS, method="none", max_new_tokens=8)
    assert profiled.texts == fast.texts and profiled.texts != plain.texts


def test_generate_honours_pytorch_hooks_on_the_bridge_blocks(tiny_model):
    from workbench.generation import generate

    vec = synthetic_vector(tiny_model)
    fast = generate(tiny_model, PROMPTS, vector=vec, method="conva-nogate", p0=0.99, max_new_tokens=8)
    with steer_layers(tiny_model, vec, p0=0.99):  # hooks on the bridge's blocks, not on the twin
        hooked = generate(tiny_model, PROMPTS, method="none", max_new_tokens=8)
    assert hooked.texts == fast.texts
