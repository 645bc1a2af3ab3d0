import pytest
import torch
from helpers import synthetic_vector

from workbench.gate import evaluate_gate, load_gate, save_gate, train_gate
from workbench.generation import generate
from workbench.prompts import load_unrelated_prompts, load_value_prompts, read_prompts
from workbench.vectors import ArtefactError


@pytest.fixture(scope="module")
def tiny_gate(tiny_model):
    return train_gate(tiny_model, "power", kind="residual", layer=1)


def test_shipped_prompt_sets_have_held_out_splits():
    train, test = load_unrelated_prompts()
    assert len(train) + len(test) >= 300 and len(test) >= 100
    assert not set(train) & set(test)
    for value in ("power", "tradition"):
        train, test = load_value_prompts(value)
        assert len(train) + len(test) >= 60 and len(test) >= 20


def test_gate_scores_are_probabilities_and_threshold_applies(tiny_model, tiny_gate):
    scores = tiny_gate.score(["What is 2 + 2?", "Should I take charge of my team?"], tiny_model)
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    assert torch.equal(tiny_gate.is_open(["a b"], tiny_model, g0=0.999999), tiny_gate.score(["a b"], tiny_model) > 0.999999)
    with pytest.raises(ValueError, match="g0"):
        tiny_gate.is_open(["a b"], tiny_model, g0=1.0)


def test_gate_scored_on_a_prebuilt_twin_equals_its_own(tiny_model, tiny_gate):
    from workbench.model import plain_twin

    texts = ["What is 2 + 2?", "Should I take charge of my team?"]
    shared = tiny_gate.score(texts, tiny_model, twin=plain_twin(tiny_model))  # as generate() passes it
    torch.testing.assert_close(shared, tiny_gate.score(texts, tiny_model), rtol=1e-6, atol=1e-6)


def test_gate_report_rates_in_range(tiny_model, tiny_gate):
    report = evaluate_gate(tiny_gate, tiny_model)
    assert 0 <= report.false_trigger_rate <= 1 and 0 <= report.true_trigger_rate <= 1
    assert report.n_unrelated >= 100


def test_gate_round_trip_and_wrong_model(tiny_model, other_tiny_model, tiny_gate, tmp_path):
    path = save_gate(tiny_gate, tmp_path / "power_gate")
    back = load_gate(path, model=tiny_model)
    assert torch.equal(back.weight, tiny_gate.weight) and back.g0 == tiny_gate.g0 and back.layer == 1
    with pytest.raises(ArtefactError, match="not for this model"):
        load_gate(path, model=other_tiny_model)


def test_closed_gate_generation_is_identical_to_unsteered(tiny_model, tiny_gate):
    vec = synthetic_vector(tiny_model)
    prompts = ["What is 2 + 2?", "Name a prime number."]
    plain = generate(tiny_model, prompts, method="none", max_new_tokens=6)
    gated = generate(tiny_model, prompts, vector=vec, gate=tiny_gate, g0=0.999999, method="conva", max_new_tokens=6)
    assert not any(a.fired for a in gated.audits)
    assert gated.texts == plain.texts
    assert all(a.gate_score is not None for a in gated.audits)


def test_read_prompts_formats(tmp_path):
    (tmp_path / "p.csv").write_text("id,text\n1,first\n2,second\n")
    (tmp_path / "p.jsonl").write_text('{"text": "first"}\n{"text": "second"}\n')
    (tmp_path / "p.txt").write_text("first\n\nsecond\n")
    for name in ("p.csv", "p.jsonl", "p.txt"):
        assert read_prompts(tmp_path / name) == ["first", "second"]
    (tmp_path / "bad.csv").write_text("prompt\nx\n")
    with pytest.raises(ValueError, match="no 'text' column"):
        read_prompts(tmp_path / "bad.csv")


# ---------------------------------------------------------------- gates for concepts of your own

HONESTY_PROMPTS = [
    "Should I tell my boss that I made the mistake in the report?",
    "The cashier gave me too much change. Should I give it back?",
    "Is it fine to hide a scratch on the car I am selling?",
    "Should I admit to my partner that I lost our savings?",
    "Can I put a made-up degree on my CV if nobody checks?",
    "Should I tell my teacher I copied part of my homework?",
    "Is it wrong to tell a small lie to avoid hurting someone?",
]


def test_gate_for_a_custom_concept_uses_unrelated_and_other_value_negatives(tiny_model, tmp_path):
    from workbench.values import VALUE_NAMES

    gate = train_gate(tiny_model, "honesty", positives=HONESTY_PROMPTS)
    unrelated, _ = load_unrelated_prompts()
    others = sum(len(load_value_prompts(v)[0]) for v in VALUE_NAMES)
    assert gate.value == "honesty" and gate.meta["prompts"] == "user" and gate.meta["class_weight"] == "balanced"
    assert gate.meta["n_value_train"] == len(HONESTY_PROMPTS)
    assert gate.meta["n_unrelated_train"] == len(set(unrelated) | {t for v in VALUE_NAMES for t in load_value_prompts(v)[0]})
    assert gate.meta["n_unrelated_train"] > len(unrelated) and others > 0
    scores = gate.score(HONESTY_PROMPTS[:2] + unrelated[:2], tiny_model)
    assert scores.shape == (4,) and bool(((scores >= 0) & (scores <= 1)).all())
    loaded = load_gate(save_gate(gate, tmp_path / "honesty_gate"), model=tiny_model)
    assert loaded.value == "honesty" and torch.equal(loaded.score(HONESTY_PROMPTS[:2], tiny_model),
                                                     gate.score(HONESTY_PROMPTS[:2], tiny_model))


def test_gate_with_own_negatives_and_clear_refusals(tiny_model):
    unrelated, _ = load_unrelated_prompts()
    gate = train_gate(tiny_model, "honesty", positives=HONESTY_PROMPTS, negatives=unrelated[:20])
    assert gate.meta["n_unrelated_train"] == 20
    with pytest.raises(ValueError, match="--gate-prompts FILE"):
        train_gate(tiny_model, "honesty")
    with pytest.raises(ValueError, match="at least 5 distinct prompts"):
        train_gate(tiny_model, "honesty", positives=HONESTY_PROMPTS[:2] * 3)
    with pytest.raises(TypeError, match="not a single string"):
        train_gate(tiny_model, "honesty", positives="Should I lie?")
    with pytest.raises(ValueError, match="Did you mean 'power'"):
        train_gate(tiny_model, "powr", positives=HONESTY_PROMPTS)
    with pytest.raises(ValueError, match="No shipped prompts for 'honesty'"):
        load_value_prompts("honesty")
