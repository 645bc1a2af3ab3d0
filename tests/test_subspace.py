"""The 2-D probe subspace: a second probe exactly orthogonal to the first, and steering that meets both."""

import torch
from test_multi import PROMPTS, residuals

from workbench.activations import tokenize
from workbench.datasets import load_pairs
from workbench.probes import probe_value
from workbench.steering import steer
from workbench.subspace import orthogonal_probe, steer_subspace


def test_second_probe_is_orthogonal_to_the_first_and_reports_its_accuracy(tiny_model):
    pairs = load_pairs("power")[:40]
    first = probe_value(tiny_model, pairs, exclude_last=1, fallback_top=2, progress=False)
    second = orthogonal_probe(tiny_model, pairs, first, progress=False)
    cos = torch.nn.functional.cosine_similarity(first.weight.double(), second.weight.double(), dim=-1)
    assert cos.abs().max() < 1e-5
    assert second.layers == first.layers and second.value == "power"
    assert second.test_acc.shape == first.test_acc.shape and ((second.test_acc >= 0) & (second.test_acc <= 1)).all()
    assert second.meta["subspace_direction"] == 2


def test_one_direction_steers_as_steer_and_two_meet_both_targets(tiny_model):
    pairs = load_pairs("power")[:40]
    first = probe_value(tiny_model, pairs, exclude_last=1, fallback_top=2, progress=False)
    second = orthogonal_probe(tiny_model, pairs, first, progress=False)
    ids, mask = tokenize(tiny_model, PROMPTS)
    layers = list(first.layers)
    single, _ = residuals(tiny_model, ids, mask, layers, steer(tiny_model, first, p0=0.97))
    one, _ = residuals(tiny_model, ids, mask, layers, steer_subspace(tiny_model, [first], p0=0.97))
    for layer in layers:
        torch.testing.assert_close(one[layer], single[layer], rtol=1e-4, atol=1e-4)
    both, record = residuals(tiny_model, ids, mask, layers, steer_subspace(tiny_model, [first, second], p0=0.97))
    for layer in layers:
        for vec in (first, second):
            assert (vec.prob(layer, both[layer][:, -1]) >= 0.97 - 1e-4).all()
    assert record.feasible


def test_second_probe_uses_the_first_probes_regularisation_unless_told_otherwise(tiny_model):
    pairs = load_pairs("power")[:40]
    first = probe_value(tiny_model, pairs, exclude_last=1, fallback_top=2, c=0.01, progress=False)
    inherited = orthogonal_probe(tiny_model, pairs, first, progress=False)
    explicit = orthogonal_probe(tiny_model, pairs, first, c=0.01, progress=False)
    sharp = orthogonal_probe(tiny_model, pairs, first, c=1.0, progress=False)
    torch.testing.assert_close(inherited.weight, explicit.weight)
    assert not torch.allclose(inherited.weight, sharp.weight)
