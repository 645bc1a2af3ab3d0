import pytest
import torch

from workbench.probes import NoLayerQualifies, fit_probes, select_layers


def _synthetic(n=60, layers=3, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    direction = torch.zeros(d)
    direction[0] = 1.0
    noise = lambda: torch.randn(n, layers, d, generator=g)  # noqa: E731
    pos, neg = noise() + 3 * direction, noise() - 3 * direction
    pos[:, 0], neg[:, 0] = noise()[:, 0], noise()[:, 0]  # layer 0 carries no signal
    return pos, neg


def test_probes_separate_signal_layers_and_not_noise():
    pos, neg = _synthetic()
    fit = fit_probes(pos[:40], neg[:40], pos[40:], neg[40:], c=1.0)
    assert fit["test_acc"][1:].min() >= 0.95
    assert fit["test_acc"][0] < 0.8
    # the probe direction points along the planted direction
    w = fit["weight"][2] / fit["weight"][2].norm()
    assert w[0] > 0.9
    # (w, b) act on raw activations: the decision rule reproduces the reported accuracy
    x = torch.cat([pos[40:, 2], neg[40:, 2]])
    y = torch.cat([torch.ones(20), torch.zeros(20)])
    acc = (((x @ fit["weight"][2] + fit["bias"][2]) > 0).float() == y).float().mean()
    assert acc == pytest.approx(float(fit["test_acc"][2]))


def test_shuffled_labels_fall_to_chance():
    pos, neg = _synthetic(n=200)
    fit = fit_probes(pos[:150], neg[:150], pos[150:], neg[150:], shuffle_labels=True)
    assert 0.3 <= float(fit["test_acc"].mean()) <= 0.7


def test_select_layers_threshold_and_exclusion():
    acc = [0.5, 0.95, 0.92, 0.99, 0.99]
    assert select_layers(acc, 0.9, exclude_last=2) == (1, 2)
    assert select_layers(acc, 0.93, exclude_last=0) == (1, 3, 4)
    with pytest.raises(NoLayerQualifies, match="best: layer 0"):
        select_layers(acc, 0.9, exclude_last=4)
    with pytest.raises(ValueError):
        select_layers(acc, 0.9, exclude_last=5)


def test_default_regularisation_keeps_accuracy_with_a_smaller_weight():
    pos, neg = _synthetic()
    soft = fit_probes(pos[:40], neg[:40], pos[40:], neg[40:])
    sharp = fit_probes(pos[:40], neg[:40], pos[40:], neg[40:], c=1.0)
    assert soft["test_acc"][1:].min() >= 0.95
    assert (soft["weight"].norm(dim=-1)[1:] < 0.5 * sharp["weight"].norm(dim=-1)[1:]).all()


def test_select_layers_fallback_top():
    acc = [0.5, 0.7, 0.8, 0.6, 0.99]
    assert select_layers(acc, 0.9, exclude_last=1, fallback_top=2) == (1, 2)


def test_cli_probe_passes_the_regularisation_to_the_saved_vectors(tiny_folder, tmp_path):
    from workbench.cli import build_parser, main
    from workbench.probes import DEFAULT_C
    from workbench.vectors import load_vector

    base = ["probe", "--values", "power", "--model", str(tiny_folder), "--device", "cpu", "--threshold", "0.0",
            "--exclude-last", "1"]
    assert main([*base, "--out", str(tmp_path / "given"), "--c", "0.5"]) == 0
    assert load_vector(tmp_path / "given" / "vectors" / "power.safetensors").meta["C"] == 0.5
    assert main([*base, "--out", str(tmp_path / "default")]) == 0
    assert load_vector(tmp_path / "default" / "vectors" / "power.safetensors").meta["C"] == DEFAULT_C
    assert f"default {DEFAULT_C}" in build_parser()._subparsers._group_actions[0].choices["probe"].format_help()
