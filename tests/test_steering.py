import math

import pytest
import torch
from helpers import PROMPTS, count_hooks, synthetic_vector

from workbench.activations import tokenize
from workbench.generation import generate
from workbench.model import hook_name
from workbench.steering import closed_form_eps, steer


def capture(model, ids, mask, layers, **steer_kwargs):
    """Residuals at ``layers`` (after any steering) and the logits."""
    seen = {}

    def grab(layer):
        def hook(x, hook):
            seen[layer] = x.detach().clone()
        return hook

    grabs = [(hook_name(layer), grab(layer)) for layer in layers]
    with torch.no_grad():
        if steer_kwargs:
            with steer(model, **steer_kwargs) as record, model.hooks(fwd_hooks=grabs):
                logits = model(ids, attention_mask=mask)
            return seen, logits, record
        with model.hooks(fwd_hooks=grabs):
            logits = model(ids, attention_mask=mask)
        return seen, logits, None


def test_closed_form_reaches_p0_and_is_zero_above():
    g = torch.Generator().manual_seed(0)
    w, e = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(100, 16, generator=g, dtype=torch.float64)
    for p0 in (0.5, 0.9, 0.999):
        eps = closed_form_eps(e, w, 0.3, p0)
        after = torch.sigmoid((e + eps[:, None] * w / w.norm()) @ w + 0.3)
        before = torch.sigmoid(e @ w + 0.3)
        assert (after >= p0 - 1e-9).all()
        assert (eps[before >= p0] == 0).all()
        assert torch.allclose(after[before < p0], torch.full_like(after[before < p0], p0))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_closed_form_rejects_bad_p0(bad):
    with pytest.raises(ValueError, match="p0 must be a probability"):
        closed_form_eps(torch.zeros(2, 3), torch.ones(3), 0.0, bad)


def test_closed_form_rejects_nan_and_zero_weight():
    with pytest.raises(ValueError, match="NaN"):
        closed_form_eps(torch.tensor([[float("nan"), 0.0]]), torch.ones(2), 0.0, 0.9)
    with pytest.raises(ValueError, match="non-zero"):
        closed_form_eps(torch.zeros(1, 2), torch.zeros(2), 0.0, 0.9)


@pytest.mark.parametrize("mode", ["prompt-once", "per-step"])
def test_steered_layers_reach_p0(tiny_model, mode):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, PROMPTS)
    seen, _, record = capture(tiny_model, ids, mask, vec.layers, vector=vec, p0=0.9, mode=mode)
    for layer in vec.layers:
        p = vec.prob(layer, seen[layer][:, -1])
        assert (p >= 0.9 - 1e-4).all(), (layer, p)
    assert [r.layer for r in record.layers] == list(vec.layers)
    assert all(e > 0 for r in record.layers for e in r.eps)
    assert all(abs(pa - 0.9) < 1e-3 for r in record.layers for pa in r.p_after)


@pytest.mark.parametrize("mode", ["prompt-once", "per-step"])
def test_steered_equals_unsteered_plus_eps_v(tiny_model, mode):
    vec = synthetic_vector(tiny_model, layers=(1,))
    ids, mask = tokenize(tiny_model, PROMPTS)
    plain, _, _ = capture(tiny_model, ids, mask, [1])
    steered, _, record = capture(tiny_model, ids, mask, [1], vector=vec, p0=0.95, mode=mode)
    eps = torch.tensor(record.layers[0].eps)
    delta = eps[:, None] * vec.direction(1)
    expected = plain[1].clone()
    if mode == "prompt-once":
        expected += delta[:, None, :]
    else:
        expected[:, -1] += delta
    assert torch.allclose(steered[1], expected, atol=1e-5)


def test_eps_zero_where_already_above_p0(tiny_model):
    vec = synthetic_vector(tiny_model, bias=+50.0)
    ids, mask = tokenize(tiny_model, PROMPTS)
    _, plain_logits, _ = capture(tiny_model, ids, mask, [])
    _, logits, record = capture(tiny_model, ids, mask, [], vector=vec, p0=0.9)
    assert all(e == 0 for r in record.layers for e in r.eps)
    assert torch.equal(logits, plain_logits)


def test_gate_closed_is_bit_identical(tiny_model):
    vec = synthetic_vector(tiny_model)
    ids, mask = tokenize(tiny_model, PROMPTS)
    _, plain_logits, _ = capture(tiny_model, ids, mask, [])
    _, closed, _ = capture(tiny_model, ids, mask, [], vector=vec, p0=0.9, gate_open=False)
    assert torch.equal(closed, plain_logits)
    _, mixed, _ = capture(tiny_model, ids, mask, [], vector=vec, p0=0.9, gate_open=[True, False, True])
    assert torch.equal(mixed[1], plain_logits[1])
    assert not torch.allclose(mixed[0], plain_logits[0])


def test_hooks_removed_after_exception(tiny_model):
    vec = synthetic_vector(tiny_model)
    before = count_hooks(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), steer(tiny_model, vec):
        assert count_hooks(tiny_model) == before + len(vec.layers)
        raise RuntimeError("boom")
    assert count_hooks(tiny_model) == before


def test_steer_rejects_bad_arguments(tiny_model):
    vec = synthetic_vector(tiny_model)
    for kwargs, message in [({"p0": 1.0}, "p0"), ({"mode": "sometimes"}, "Unknown mode"), ({"layers": [99]}, "invalid")]:
        with pytest.raises(ValueError, match=message), steer(tiny_model, vec, **kwargs):
            pass
    with pytest.raises(ValueError, match="gate_open has 2 entries"), steer(tiny_model, vec, gate_open=[True, False]):
        ids, mask = tokenize(tiny_model, PROMPTS)
        tiny_model(ids, attention_mask=mask)


@pytest.mark.parametrize(("method", "mode"), [("conva-nogate", "prompt-once"), ("conva-nogate", "per-step"),
                                              ("caa", "prompt-once"), ("none", "prompt-once")])
def test_batched_generation_equals_one_at_a_time(tiny_model, method, mode):
    vec = synthetic_vector(tiny_model)
    kwargs = {"vector": vec, "method": method, "mode": mode, "p0": 0.9, "max_new_tokens": 8}
    batched = generate(tiny_model, PROMPTS, batch_size=3, **kwargs)
    single = [generate(tiny_model, [p], batch_size=1, **kwargs) for p in PROMPTS]
    assert batched.texts == tuple(s.texts[0] for s in single)
    for b, s in zip(batched.audits, single, strict=True):
        for lb, ls in zip(b.layers, s.audits[0].layers, strict=True):
            assert lb["layer"] == ls["layer"] and math.isclose(lb["eps"], ls["eps"], rel_tol=1e-4, abs_tol=1e-4)


def test_steering_changes_generation_and_audit(tiny_model):
    vec = synthetic_vector(tiny_model)
    plain = generate(tiny_model, PROMPTS, method="none", max_new_tokens=8)
    steered = generate(tiny_model, PROMPTS, vector=vec, method="conva-nogate", p0=0.99, max_new_tokens=8)
    assert plain.texts != steered.texts
    assert all(a.fired and len(a.layers) == 2 for a in steered.audits)
    assert all(not a.fired and not a.layers for a in plain.audits)


def test_generate_bad_input(tiny_model):
    vec = synthetic_vector(tiny_model)
    with pytest.raises(ValueError, match="No prompts"):
        generate(tiny_model, [], vector=vec)
    with pytest.raises(TypeError):
        generate(tiny_model, "one string", vector=vec)
    with pytest.raises(ValueError, match="needs a gate"):
        generate(tiny_model, PROMPTS, vector=vec, method="conva")
    with pytest.raises(ValueError, match="needs a value vector"):
        generate(tiny_model, PROMPTS, method="caa")


# ---------------------------------------------------------------- the steer command


def _no_model(monkeypatch):
    import workbench.cli as cli

    monkeypatch.setattr(cli.common, "load", lambda args: pytest.fail("the model was loaded before the arguments were checked"))
    return cli.main


@pytest.mark.parametrize(("extra", "message"), [
    (["--method", "caa", "--coef", "nan"], "--coef must be a finite number"),
    (["--method", "caa", "--coef", "inf"], "--coef must be a finite number"),
    (["--method", "caa", "--coef", "1e30"], "--coef must be a finite number"),
    (["--method", "caa", "--g0", "0.5"], "--g0 is for the gate, but method 'caa' steers without one"),
    (["--method", "conva-nogate", "--g0", "0.5"], "--g0 is for the gate, but method 'conva-nogate'"),
    (["--layers", ""], "--layers is empty"),
    (["--layers", "a"], "--layers 'a': 'a' is not a layer number"),
    (["--layers", "3,x"], "'x' is not a layer number"),
    (["--p0", "1.5"], "--p0 must be a probability"),
])
def test_cli_steer_checks_its_arguments_before_loading_the_model(monkeypatch, capsys, extra, message):
    main = _no_model(monkeypatch)
    assert main(["steer", "--value", "power", "--prompt", "hi", *extra]) == 2
    assert message in capsys.readouterr().err


def _saved_vector(model, value, path):
    import dataclasses

    from workbench.model import fingerprint, model_info
    from workbench.vectors import save_vector

    vec = synthetic_vector(model)
    meta = {**model_info(model), "model_fingerprint": fingerprint(model), "hook_site": "hook_resid_post"}
    return save_vector(dataclasses.replace(vec, value=value, meta=meta), path)


def test_cli_steer_refuses_a_vector_or_gate_made_for_another_value(tiny_model, tiny_folder, tmp_path, capsys):
    from workbench.cli import main
    from workbench.gate import Gate, save_gate
    from workbench.model import fingerprint, model_info

    args = ["steer", "--value", "achievement", "--prompt", "hi", "--max-new-tokens", "2", "--model", str(tiny_folder),
            "--device", "cpu"]
    _saved_vector(tiny_model, "power", tmp_path / "v" / "achievement.safetensors")  # power's vector, renamed
    assert main([*args, "--method", "caa", "--vectors", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert "was made for value 'power', not for 'achievement'" in err and "workbench probe --values achievement" in err

    _saved_vector(tiny_model, "achievement", tmp_path / "ok" / "achievement.safetensors")
    meta = {**model_info(tiny_model), "model_fingerprint": fingerprint(tiny_model)}
    gate = save_gate(Gate("power", "residual", torch.zeros(tiny_model.cfg.d_model), 0.0, 0.5, 1, meta),
                     tmp_path / "power_gate.safetensors")
    assert main([*args, "--vectors", str(tmp_path / "ok"), "--gate", str(gate)]) == 2
    err = capsys.readouterr().err
    assert "Gate" in err and "was made for value 'power', not for 'achievement'" in err
    assert main([*args, "--method", "caa", "--vectors", str(tmp_path / "ok")]) == 0  # the right files work


def test_generate_without_a_vector_defaults_to_the_plain_model(tiny_model):
    plain = generate(tiny_model, ["What is 2 + 2?"], max_new_tokens=4)
    assert plain == generate(tiny_model, ["What is 2 + 2?"], method="none", max_new_tokens=4)
    assert plain.audits[0].fired is False and plain.audits[0].gate_score is None
    vec = synthetic_vector(tiny_model)
    with pytest.raises(ValueError, match="Method 'conva' needs a gate"):  # with a vector the default is ConVA
        generate(tiny_model, ["What is 2 + 2?"], vector=vec, max_new_tokens=4)
