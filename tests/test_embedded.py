"""Integration tests on the embedded SmolLM2-135M-Instruct (loaded once per session)."""

import pytest
import torch
from test_activations import tl_hook_reference

from workbench.activations import extract
from workbench.datasets import load_pairs
from workbench.gate import evaluate_gate, train_gate
from workbench.generation import generate
from workbench.probes import probe_value

pytestmark = pytest.mark.embedded


def test_embedded_model_shape(embedded_model):
    assert embedded_model.cfg.n_layers == 30 and embedded_model.cfg.d_model == 576


def test_bridge_logits_match_plain_hf(embedded_model):
    ids = embedded_model.tokenizer("Tradition matters to my family.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        bridge = embedded_model(ids)
        plain = embedded_model.original_model(ids).logits
    assert torch.allclose(bridge, plain, atol=1e-4)


def test_batched_extraction_equals_one_at_a_time(embedded_model):
    texts = ["I value my freedom.", "She kept every family custom at the festival, as her mother had.", "Go."]
    batched = extract(embedded_model, texts, progress=False)
    single = torch.cat([extract(embedded_model, [t], progress=False) for t in texts])
    # float32 residuals reach ~10^3 in late layers: compare at 1e-4 relative to each vector's scale
    scale = single.abs().amax(dim=-1, keepdim=True)
    assert ((batched - single).abs() / scale).max() < 1e-4
    # and the fast path (hooks on the HF decoder layers) equals the TransformerLens hook path
    reference = tl_hook_reference(embedded_model, texts, list(range(embedded_model.cfg.n_layers)))
    assert ((extract(embedded_model, texts, batch_size=3, progress=False) - reference).abs() / scale).max() < 1e-5


@pytest.fixture(scope="module")
def achievement_vector(embedded_model):
    return probe_value(embedded_model, load_pairs("achievement"), progress=False)


def test_probe_finds_value_in_middle_layers(achievement_vector):
    acc = achievement_vector.test_acc
    assert float(acc[8:25].max()) >= 0.9
    assert achievement_vector.layers and all(layer < 25 for layer in achievement_vector.layers)


def test_shuffled_labels_near_chance(embedded_model):
    vec = probe_value(embedded_model, load_pairs("achievement"), shuffle_labels=True, progress=False)
    assert 0.35 <= float(vec.test_acc.mean()) <= 0.65


def test_gate_separates_value_from_unrelated_prompts(embedded_model):
    report = evaluate_gate(train_gate(embedded_model, "achievement", kind="residual"), embedded_model)
    assert report.true_trigger_rate >= 0.8 and report.false_trigger_rate <= 0.1


def test_gated_steering_leaves_unrelated_prompts_and_fires_on_value_prompts(embedded_model, achievement_vector):
    gate = train_gate(embedded_model, "achievement", kind="residual")
    prompts = ["What is the boiling point of water at sea level?",
               "My coach says I could win the regional title if I train twice a day. Should I go for it?"]
    plain = generate(embedded_model, prompts, method="none", max_new_tokens=12)
    steered = generate(embedded_model, prompts, vector=achievement_vector, gate=gate, method="conva", p0=0.99,
                       max_new_tokens=12)
    assert not steered.audits[0].fired and steered.texts[0] == plain.texts[0]
    assert steered.audits[1].fired
    assert all(rec["p_after"] >= 0.99 - 1e-3 for rec in steered.audits[1].layers)
