"""SteeringSpec: defaults resolved from one place, artefacts checked against each other, the method registry."""

import dataclasses
import json

import pytest
import torch
from helpers import PROMPTS, count_hooks, synthetic_vector

from workbench import constants
from workbench.activations import tokenize
from workbench.defaults import FALLBACK, steering_defaults
from workbench.gate import Gate
from workbench.generation import generate
from workbench.methods import METHODS, get_method
from workbench.model import fingerprint, model_info
from workbench.steering import SpecMismatch, SteeringSpec, steer, steer_layers


def _gate(model, value="power", fp=None, width=None):
    meta = {**model_info(model), "model_fingerprint": fp or fingerprint(model)}
    return Gate(value, "residual", torch.zeros(width or model.cfg.d_model), 0.0, 0.5, 1, meta)


def _with_fp(vec, fp):
    return dataclasses.replace(vec, meta={**vec.meta, "model_fingerprint": fp})


def test_resolve_fills_every_default_from_its_one_home(tiny_model):
    vec = synthetic_vector(tiny_model)
    swept = steering_defaults(vec.value)
    spec = SteeringSpec("conva", vector=vec, gate=_gate(tiny_model)).resolve(tiny_model)
    assert (spec.p0, spec.coef, spec.g0, spec.layers, spec.mode) == (swept.p0, swept.coef, 0.5, vec.layers,
                                                                      constants.MODES[0])
    assert SteeringSpec(vector=vec).kind.name == "conva" and SteeringSpec().kind.name == "none"
    mine = dataclasses.replace(vec, value="honesty")  # a concept of your own: no sweep, the fallback
    assert SteeringSpec("caa", vector=mine).resolve().coef == FALLBACK.coef
    given = SteeringSpec("caa", vector=vec, coef=2.5, layers=[2, 1, 2]).resolve()
    assert given.coef == 2.5 and given.layers == (1, 2)


def test_a_gate_for_another_value_is_refused(tiny_model):
    vec = synthetic_vector(tiny_model)  # power
    with pytest.raises(SpecMismatch, match="gate was trained for value 'achievement' but the vector steers 'power'"):
        generate(tiny_model, PROMPTS, vector=vec, gate=_gate(tiny_model, "achievement"), method="conva",
                 max_new_tokens=2)


def test_value_asked_for_must_match_the_vector_and_gate(tiny_model):
    vec = synthetic_vector(tiny_model)
    with pytest.raises(SpecMismatch, match="vector was made for value 'power', not for 'achievement'"):
        SteeringSpec("caa", vector=vec, value="achievement").resolve(tiny_model)
    with pytest.raises(SpecMismatch, match="gate was made for value 'power', not for 'achievement'"):
        SteeringSpec("conva", vector=dataclasses.replace(vec, value="achievement"), gate=_gate(tiny_model),
                     value="achievement").resolve(tiny_model)


def test_fingerprints_and_widths_must_agree(tiny_model):
    vec = _with_fp(synthetic_vector(tiny_model), "aaaa")
    with pytest.raises(SpecMismatch, match="probed on model fingerprint aaaa but the gate was trained on bbbb"):
        SteeringSpec("conva", vector=vec, gate=_gate(tiny_model, fp="bbbb")).resolve(tiny_model)
    with pytest.raises(SpecMismatch, match="reads d_model=8 residuals but the power vector has d_model=64"):
        SteeringSpec("conva", vector=vec, gate=_gate(tiny_model, fp="aaaa", width=8)).resolve(tiny_model)
    narrow = dataclasses.replace(vec, weight=vec.weight[:, :8], mean_diff=vec.mean_diff[:, :8])
    with pytest.raises(SpecMismatch, match="Probe this model instead"):
        SteeringSpec("caa", vector=narrow).resolve(tiny_model)


def test_defaults_swept_on_another_model_are_refused(tiny_model, tmp_path):
    vec = _with_fp(synthetic_vector(tiny_model), "aaaa")
    path = tmp_path / "steering_defaults.json"
    path.write_text(json.dumps({"meta": {"model_fingerprint": "cccc"}, "values": {"power": {"p0": 0.9, "coef": 1}}}))
    with pytest.raises(SpecMismatch, match=r"swept on model fingerprint cccc.*workbench sweep"):
        SteeringSpec("caa", vector=vec, defaults=path).resolve()
    path.write_text(json.dumps({"meta": {"model_fingerprint": "aaaa"}, "values": {"power": {"p0": 0.9, "coef": 1}}}))
    assert SteeringSpec("caa", vector=vec, defaults=path).resolve().coef == 1.0


def test_spec_and_keywords_are_the_same_call(tiny_model):
    vec = synthetic_vector(tiny_model)
    spec = SteeringSpec("conva-nogate", vector=vec, p0=0.95, mode="per-step")
    by_spec = generate(tiny_model, PROMPTS, spec, max_new_tokens=4)
    assert by_spec == generate(tiny_model, PROMPTS, vector=vec, method="conva-nogate", p0=0.95, mode="per-step",
                               max_new_tokens=4)
    with pytest.raises(TypeError, match="either a SteeringSpec or keyword settings"):
        generate(tiny_model, PROMPTS, spec, p0=0.9)
    ids, mask = tokenize(tiny_model, PROMPTS)
    with torch.no_grad():
        with steer(tiny_model, spec) as a:
            one = tiny_model(ids, attention_mask=mask)
        with steer(tiny_model, vec, p0=0.95, mode="per-step", method="conva") as b:
            two = tiny_model(ids, attention_mask=mask)
    assert torch.equal(one, two) and a.layers == b.layers


def test_generate_returns_the_new_tokens(tiny_model):
    out = generate(tiny_model, PROMPTS, method="none", max_new_tokens=5, batch_size=2)
    assert len(out.tokens) == len(PROMPTS) and all(len(t) <= 5 for t in out.tokens)
    eos = tiny_model.tokenizer.eos_token_id
    for text, row in zip(out.texts, out.tokens, strict=True):
        row = list(row)[: row.index(eos)] if eos in row else list(row)
        assert tiny_model.tokenizer.decode(row, skip_special_tokens=True).strip() == text


def test_the_hook_counter_sees_decoder_layer_hooks(tiny_model):
    vec = synthetic_vector(tiny_model)
    before = count_hooks(tiny_model)
    with steer_layers(tiny_model, vec, p0=0.9):
        assert count_hooks(tiny_model) == before + len(vec.layers)
    assert count_hooks(tiny_model) == before


def test_the_method_registry_backs_the_constants():
    assert constants.GENERATION_METHODS == ("none", "prompt", "caa", "conva", "conva-nogate")
    assert constants.SUITE_METHODS == (*constants.GENERATION_METHODS, "conva-naive")
    assert {m: METHODS[m].shift for m in METHODS} == {"none": None, "prompt": None, "caa": "caa", "conva": "conva",
                                                      "conva-nogate": "conva", "conva-naive": "conva"}
    assert get_method("conva-naive", constants.SUITE_METHODS).base.name == "conva"
    with pytest.raises(ValueError, match="Unknown method 'magic'"):
        SteeringSpec("magic")
    with pytest.raises(ValueError, match="suite's name for 'conva'"):
        SteeringSpec("conva-naive", vector=None).resolve()
