"""Determinism on the tiny model: the same seed gives byte-identical vectors and tables, and
identical generations (greedy, and sampled with a seed), whatever the global random state."""

from __future__ import annotations

import pytest
import torch
from helpers import synthetic_vector

from workbench.activations import extract
from workbench.datasets import load_pairs
from workbench.generation import generate
from workbench.probes import probe_value
from workbench.tables import write_csv
from workbench.vectors import save_vector

PROMPTS = ["hello there", "a longer prompt about values and choices", "x y"]


def _probe(model, seed: int = 0):
    pairs = load_pairs("power")[:24]  # enough for a split and a fit; keeps the test fast
    return probe_value(model, pairs, seed=seed, exclude_last=1, fallback_top=2, progress=False)


def _accuracy_rows(vec) -> list[tuple]:
    return [(vec.value, layer, float(vec.train_acc[layer]), float(vec.test_acc[layer])) for layer in range(vec.n_layers)]


@pytest.fixture(scope="module")
def two_runs(tiny_model):
    torch.manual_seed(1)
    first = _probe(tiny_model)
    torch.manual_seed(2)  # a different global random state must not matter
    second = _probe(tiny_model)
    return first, second


def test_same_seed_gives_byte_identical_vectors(two_runs, tmp_path):
    first, second = two_runs
    a = save_vector(first, tmp_path / "a" / "power")
    b = save_vector(second, tmp_path / "b" / "power")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
    again = save_vector(first, tmp_path / "c" / "power")  # saving the same vector twice
    assert again.read_bytes() == a.read_bytes()


def test_same_seed_gives_identical_accuracy_tables(two_runs, tmp_path):
    first, second = two_runs
    columns = ["value", "layer", "train_acc", "test_acc"]
    a = write_csv(tmp_path / "a.csv", columns, _accuracy_rows(first))
    b = write_csv(tmp_path / "b.csv", columns, _accuracy_rows(second))
    assert a.read_bytes() == b.read_bytes()
    assert first.layers == second.layers and first.meta == second.meta


def test_another_seed_gives_another_split(tiny_model, two_runs):
    other = _probe(tiny_model, seed=1)
    assert other.meta["data_hash"] != two_runs[0].meta["data_hash"]
    assert not torch.equal(other.weight, two_runs[0].weight)


def test_extraction_is_repeatable(tiny_model):
    texts = ["I value my freedom.", "I follow the rules.", "x"]
    assert torch.equal(extract(tiny_model, texts, progress=False), extract(tiny_model, texts, progress=False))


@pytest.mark.parametrize("method", ["none", "conva-nogate", "caa"])
def test_greedy_generation_is_repeatable(tiny_model, method):
    vec = synthetic_vector(tiny_model)
    runs = [generate(tiny_model, PROMPTS, vector=vec, method=method, max_new_tokens=10) for _ in range(2)]
    assert runs[0].texts == runs[1].texts
    assert runs[0].audits == runs[1].audits


@pytest.mark.parametrize("method", ["none", "conva-nogate"])
def test_sampled_generation_is_repeatable_with_a_seed(tiny_model, method):
    vec = synthetic_vector(tiny_model)
    kwargs = {"vector": vec, "method": method, "max_new_tokens": 12, "do_sample": True, "temperature": 1.0}
    torch.manual_seed(123)
    first = generate(tiny_model, PROMPTS, seed=7, **kwargs)
    torch.manual_seed(999)  # the global random state before the call does not matter
    second = generate(tiny_model, PROMPTS, seed=7, **kwargs)
    assert first.texts == second.texts
    other = generate(tiny_model, PROMPTS, seed=8, **kwargs)
    assert other.texts != first.texts  # the seed is actually used
