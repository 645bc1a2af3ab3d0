"""Inputs at the edges: empty lists, over-long prompts, unknown names, probabilities and layers out of
range, empty and degenerate data sets. Each gives a clear error (or a documented warning), never a
library traceback from deep inside torch or scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import synthetic_vector

from workbench.activations import extract, tokenize
from workbench.datasets import ContrastPair, load_pairs, split_pairs
from workbench.gate import Gate, train_gate
from workbench.generation import generate
from workbench.probes import fit_probes, probe_value, select_layers
from workbench.steering import closed_form_eps, steer
from workbench.values import get_value, resolve_values

# ---------------------------------------------------------------- empty inputs


def test_empty_prompt_lists(tiny_model):
    vec = synthetic_vector(tiny_model)
    with pytest.raises(ValueError, match="No prompts given"):
        generate(tiny_model, [], vector=vec, method="conva-nogate")
    with pytest.raises(ValueError, match="No texts given"):
        extract(tiny_model, [], progress=False)
    with pytest.raises(ValueError, match="No texts given"):
        tokenize(tiny_model, [])
    gate = Gate("power", "residual", torch.zeros(tiny_model.cfg.d_model), 0.0, 0.5, 1)
    assert gate.score([], tiny_model).shape == (0,)


def test_single_string_instead_of_a_list(tiny_model):
    with pytest.raises(TypeError, match="not a single string"):
        generate(tiny_model, "one prompt", method="none")
    with pytest.raises(TypeError, match="not a single string"):
        extract(tiny_model, "one text", progress=False)


@pytest.mark.parametrize("bad", ["", "   ", None, 5])
def test_blank_or_non_string_texts(tiny_model, bad):
    with pytest.raises(ValueError, match=r"Every text must be a non-empty string; text 1 is"):
        extract(tiny_model, ["fine", bad], progress=False)


def test_lone_surrogate_text_is_a_clear_error(tiny_model):
    with pytest.raises(ValueError, match="Text 0 holds an invalid Unicode character"):
        extract(tiny_model, ["bad \ud800 text"], progress=False)


# ---------------------------------------------------------------- prompts longer than the context


def test_long_text_is_cut_from_the_left_with_a_warning(tiny_model):
    n_ctx = tiny_model.cfg.n_ctx
    long_text = "".join(chr(97 + i % 26) for i in range(n_ctx + 300))  # byte-level tokenizer: one token a char
    expected = rf"longer than the context \(\d+ > {n_ctx} tokens\).*1 text\(s\), the first starting 'abcdef"
    with pytest.warns(UserWarning, match=expected):
        acts = extract(tiny_model, ["short", long_text], progress=False)
    tail = extract(tiny_model, [long_text[-n_ctx:]], progress=False)
    assert torch.allclose(acts[1], tail[0], atol=1e-5)  # exactly the last n_ctx tokens were kept
    short = extract(tiny_model, ["short"], progress=False)
    assert torch.allclose(acts[0], short[0], atol=1e-5)  # the short text in the same batch is untouched


def test_generate_with_a_prompt_longer_than_the_context(tiny_model):
    long_prompt = "word " * tiny_model.cfg.n_ctx
    with pytest.warns(UserWarning, match="longer than the context"):
        out = generate(tiny_model, [long_prompt, "hi"], method="none", max_new_tokens=3)
    assert len(out.texts) == 2 and all(isinstance(t, str) for t in out.texts)


def test_max_length_must_be_positive(tiny_model):
    with pytest.raises(ValueError, match="max_length must be >= 1"):
        tokenize(tiny_model, ["a"], max_length=0)


# ---------------------------------------------------------------- unknown value names


@pytest.mark.parametrize(("name", "suggestion"), [("powr", "power"), ("benevolance", "benevolence"),
                                                  ("self direction", None), ("Univeralism", "universalism")])
def test_unknown_value_names_suggest_the_closest(tiny_model, name, suggestion):
    if suggestion is None:  # spaces and case are normalised: this one is known
        assert get_value(name).name == "self-direction"
        return
    for call in (lambda: get_value(name), lambda: load_pairs(name), lambda: resolve_values(f"power,{name}"),
                 lambda: train_gate(tiny_model, name)):
        with pytest.raises(ValueError, match=rf"Unknown value '{name}'\. Did you mean '{suggestion}'\?"):
            call()


def test_unknown_value_without_a_close_match_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known values: self-direction, stimulation"):
        get_value("xyzzy")


# ---------------------------------------------------------------- probabilities out of (0, 1)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.9"])
def test_p0_outside_the_open_unit_interval(tiny_model, p):
    vec = synthetic_vector(tiny_model)
    message = r"p0 must be a probability strictly between 0 and 1"
    with pytest.raises(ValueError, match=message), steer(tiny_model, vec, p0=p):
        pass
    with pytest.raises(ValueError, match=message):
        generate(tiny_model, ["hi"], vector=vec, method="conva-nogate", p0=p)
    with pytest.raises(ValueError, match=message):
        closed_form_eps(torch.zeros(1, 3), torch.ones(3), 0.0, p)


def test_unset_p0_and_coef_are_the_values_swept_defaults(tiny_model):
    """None means "not set": steer() and generate() then use the value's swept P0 / coefficient."""
    from workbench.defaults import steering_defaults

    vec = synthetic_vector(tiny_model)
    swept = steering_defaults(vec.value)
    with pytest.raises(ValueError, match="p0 must be a probability"):
        closed_form_eps(torch.zeros(1, 3), torch.ones(3), 0.0, None)
    unset = generate(tiny_model, ["hi"], vector=vec, method="conva-nogate", p0=None, max_new_tokens=2)
    assert unset == generate(tiny_model, ["hi"], vector=vec, method="conva-nogate", p0=swept.p0, max_new_tokens=2)
    unset = generate(tiny_model, ["hi"], vector=vec, method="caa", coef=None, max_new_tokens=2)
    assert unset == generate(tiny_model, ["hi"], vector=vec, method="caa", coef=swept.coef, max_new_tokens=2)


@pytest.mark.parametrize("coef", [float("nan"), float("inf"), -float("inf"), 1e30, -2e3, True, "4"])
def test_caa_coefficient_must_be_finite_and_moderate(tiny_model, coef):
    vec = synthetic_vector(tiny_model)
    message = r"coef must be a finite number with \|coef\| <= 1000"
    with pytest.raises(ValueError, match=message), steer(tiny_model, vec, method="caa", coef=coef):
        pass
    with pytest.raises(ValueError, match=message):
        generate(tiny_model, ["hi"], vector=vec, method="caa", coef=coef)


def test_caa_accepts_negative_and_ordinary_coefficients(tiny_model):
    vec = synthetic_vector(tiny_model)
    for coef in (-4.0, 0.0, 8, 1000.0):
        with steer(tiny_model, vec, method="caa", coef=coef):
            pass


def test_max_new_tokens_beyond_the_context_is_refused(tiny_model):
    n_ctx = tiny_model.cfg.n_ctx
    with pytest.raises(ValueError, match=f"exceeds the model's context of {n_ctx} tokens"):
        generate(tiny_model, ["hi"], method="none", max_new_tokens=n_ctx + 1)  # 10_000_000 ran unbounded


@pytest.mark.parametrize("g0", [0.0, 1.0, -1.0, 2.0, float("nan")])
def test_g0_outside_the_open_unit_interval(tiny_model, g0):
    gate = Gate("power", "residual", torch.zeros(tiny_model.cfg.d_model), 0.0, 0.5, 1)
    with pytest.raises(ValueError, match="g0 must be a probability"):
        gate.is_open(["hi"], tiny_model, g0=g0)
    with pytest.raises(ValueError, match="g0 must be a probability"):
        generate(tiny_model, ["hi"], vector=synthetic_vector(tiny_model), gate=gate, g0=g0, method="conva")


# ---------------------------------------------------------------- layers out of range


@pytest.mark.parametrize("layers", [[4], [-1], [0, 99]])
def test_layers_out_of_range(tiny_model, layers):
    with pytest.raises(ValueError, match=r"out of range: this model has layers 0\.\.3"):
        extract(tiny_model, ["a"], layers=layers, progress=False)
    with pytest.raises(ValueError, match=r"invalid: choose steering layers from 0\.\.3"), \
            steer(tiny_model, synthetic_vector(tiny_model), layers=layers):
        pass
    with pytest.raises(ValueError, match=r"invalid: choose from 0\.\.3"):
        synthetic_vector(tiny_model).with_layers(layers)


@pytest.mark.parametrize("layers", [[1.5], ["1"], [True], 2.0])
def test_layers_that_are_not_integers(tiny_model, layers):
    with pytest.raises(ValueError, match="Layers must be integer layer indices"):
        extract(tiny_model, ["a"], layers=layers, progress=False)


def test_gate_and_probe_layer_arguments_out_of_range(tiny_model):
    with pytest.raises(ValueError, match=r"Gate layer 99 out of range 0\.\.3"):
        train_gate(tiny_model, "power", kind="residual", layer=99)
    pairs = load_pairs("power")[:8]
    with pytest.raises(ValueError, match=r"exclude_last must be in 0\.\.3 for this 4-layer model"):
        probe_value(tiny_model, pairs, exclude_last=5, progress=False)
    with pytest.raises(ValueError, match=r"threshold .* must be in \[0, 1\)"):
        probe_value(tiny_model, pairs, threshold=1.5, exclude_last=1, progress=False)
    with pytest.raises(ValueError, match="test accuracies are empty"):
        select_layers([])


# ---------------------------------------------------------------- empty and degenerate data sets


def _acts(n: int, layers: int = 3, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, layers, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ((_acts(0), _acts(5), _acts(2), _acts(2)), r"pos_train must be a non-empty .* both classes"),
        ((_acts(5), _acts(0), _acts(2), _acts(2)), r"neg_train must be a non-empty .* both classes"),
        ((_acts(5), _acts(5), _acts(0), _acts(2)), "pos_test must be a non-empty"),
        ((_acts(5), _acts(5), _acts(2), _acts(0)), "neg_test must be a non-empty"),
        ((_acts(5)[:, 0], _acts(5), _acts(2), _acts(2)), r"must be a non-empty \[n, layers, d_model\] tensor"),
        ((_acts(5), _acts(5, d=9), _acts(2), _acts(2)), "same model and layers"),
        ((_acts(5), _acts(5, layers=2), _acts(2), _acts(2)), "same model and layers"),
        ((_acts(5) * float("nan"), _acts(5), _acts(2), _acts(2)), "NaN or inf activations"),
        ((np.zeros((5, 3, 8)), _acts(5), _acts(2), _acts(2)), "must be a .* tensor, got ndarray"),
    ],
)
def test_fit_probes_on_empty_one_class_or_mismatched_sets(sets, message):
    with pytest.raises(ValueError, match=message) as info:
        fit_probes(*sets)
    assert "sklearn" not in type(info.value).__module__


@pytest.mark.parametrize("c", [0.0, -1.0, float("nan"), float("inf")])
def test_fit_probes_bad_regularisation(c):
    with pytest.raises(ValueError, match=r"c \(inverse regularisation strength\) must be a positive number"):
        fit_probes(_acts(5), _acts(5, seed=1), _acts(2), _acts(2, seed=1), c=c)


def test_fit_probes_with_identical_classes_still_works():
    """Both classes present but indistinguishable: a valid fit at chance, not a crash."""
    same = _acts(6)
    fit = fit_probes(same, same.clone(), same[:2], same[:2].clone())
    assert fit["test_acc"].shape == (3,) and torch.isfinite(fit["weight"]).all()


def test_probe_value_on_empty_tiny_or_mixed_data(tiny_model):
    pairs = load_pairs("power")
    with pytest.raises(ValueError, match="No pairs given: the data set is empty"):
        probe_value(tiny_model, [], progress=False)
    with pytest.raises(ValueError, match="Need at least 4 pairs to split into train and test, got 3"):
        probe_value(tiny_model, pairs[:3], exclude_last=1, progress=False)
    mixed = pairs[:4] + load_pairs("security")[:4]
    with pytest.raises(ValueError, match=r"Pairs mix several values \['power', 'security'\]"):
        probe_value(tiny_model, mixed, exclude_last=1, progress=False)
    with pytest.raises(ValueError, match="pairs must be ContrastPair objects"):
        probe_value(tiny_model, [("power", "a", "b")] * 4, exclude_last=1, progress=False)
    with pytest.raises(ValueError, match="No pairs given"):
        probe_value(tiny_model, ContrastPair("power", "a", "b"), progress=False)


def test_split_pairs_edges():
    pairs = load_pairs("power")
    for fraction in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match="test_fraction must be in"):
            split_pairs(pairs, fraction)
    train, test = split_pairs(pairs[:4], 0.01)
    assert len(test) == 1 and len(train) == 3


def test_no_warning_for_ordinary_inputs(tiny_model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extract(tiny_model, ["an ordinary sentence"], progress=False)
