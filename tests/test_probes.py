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
    saved = load_vector(tmp_path / "default" / "vectors" / "power.safetensors")
    assert saved.meta["C"] == DEFAULT_C
    assert saved.meta["read_format"] == "bare"  # the format the probes were trained in, where P_V is read at steering time
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["probe"].format_help().split())
    assert f"(default: {DEFAULT_C})" in text


def _read_table(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_cli_probe_merges_accuracy_by_value_and_leaves_it_alone_on_failure(tiny_folder, tmp_path, monkeypatch):
    import workbench.probes as probes_mod
    from workbench.cli import main

    out = tmp_path / "out"
    base = ["probe", "--model", str(tiny_folder), "--device", "cpu", "--threshold", "0.0", "--exclude-last", "1",
            "--out", str(out)]
    assert main([*base, "--values", "power,achievement"]) == 0
    first = _read_table(out / "accuracy.csv")
    assert first[0] == ["value", "layer", "train_acc", "test_acc"]
    assert {r[0] for r in first[1:]} == {"power", "achievement"}
    assert main([*base, "--values", "achievement", "--seed", "1"]) == 0  # re-probe one value
    second = _read_table(out / "accuracy.csv")
    assert [r for r in second if r[0] == "power"] == [r for r in first if r[0] == "power"]  # kept as they were
    assert len([r for r in second if r[0] == "achievement"]) == 4  # replaced, not appended

    before = (out / "accuracy.csv").read_bytes()

    def no_layer(*args, **kwargs):
        raise NoLayerQualifies("No layer has test accuracy above 0.999.")

    monkeypatch.setattr(probes_mod, "probe_value", no_layer)
    assert main([*base, "--values", "power,achievement", "--threshold", "0.999"]) == 2
    assert (out / "accuracy.csv").read_bytes() == before  # a failed run does not wipe the table


def test_cli_probe_refuses_a_foreign_accuracy_table_and_c_zero_before_loading(tmp_path, monkeypatch, capsys):
    import workbench.cli as cli

    monkeypatch.setattr(cli.common, "load", lambda args: pytest.fail("the model was loaded before the arguments were checked"))
    base = ["probe", "--values", "power", "--out", str(tmp_path)]
    assert cli.main([*base, "--c", "0"]) == 2
    assert "c (inverse regularisation strength) must be a positive number" in capsys.readouterr().err
    (tmp_path / "accuracy.csv").write_text("name,score\nx,1\n")
    assert cli.main(base) == 2
    assert "is not an accuracy table written by `workbench probe`" in capsys.readouterr().err


def test_probe_value_takes_tuples_for_a_custom_concept_and_warns_on_a_small_split(tiny_model):
    from workbench.datasets import as_pairs
    from workbench.probes import SmallTestSplitWarning, probe_value
    from workbench.stats import wilson_interval

    tuples = [(f"I told {name} the truth about the {thing}.", f"I told {name} a lie about the {thing}.")
              for name in ("Ann", "Bob", "Cy", "Di") for thing in ("car", "rent", "exam")]
    with pytest.warns(SmallTestSplitWarning) as caught:
        vec = probe_value(tiny_model, tuples, value="honesty", exclude_last=1, fallback_top=2, progress=False)
    assert vec.value == "honesty" and vec.meta["n_test_pairs"] == 3
    message = str(caught[0].message)
    best = float(vec.test_acc.max())
    lo, hi = wilson_interval(best, 6)
    assert "Only 3 held-out pairs (6 test sentences)" in message and f"[{lo:.2f}, {hi:.2f}]" in message
    assert "Use at least 80 pairs" in message
    with pytest.raises(ValueError, match="value='power' but the pairs are for"):
        probe_value(tiny_model, as_pairs(tuples, value="honesty"), value="power", progress=False)


def test_enough_test_pairs_do_not_warn(tiny_model):
    import warnings

    from workbench.datasets import load_pairs
    from workbench.probes import SmallTestSplitWarning, probe_value

    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallTestSplitWarning)
        probe_value(tiny_model, load_pairs("power")[:80], exclude_last=1, fallback_top=2, progress=False)


def test_wilson_interval_known_values():
    from workbench.stats import wilson_interval

    lo, hi = wilson_interval(1.0, 6)
    assert lo == pytest.approx(0.6097, abs=1e-4) and hi == 1.0
    lo, hi = wilson_interval(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    with pytest.raises(ValueError, match="n must be a positive"):
        wilson_interval(0.5, 0)


def test_read_format_fits_the_probes_where_the_sentence_is_read(tiny_model):
    from workbench.activations import extract
    from workbench.datasets import load_pairs, split_pairs
    from workbench.probes import probe_value
    from workbench.readout import reading_texts

    pairs = load_pairs("power")[:16]
    vec = probe_value(tiny_model, pairs, threshold=0.0, exclude_last=1, progress=False, read_format="assistant-start")
    assert vec.meta["read_format"] == "assistant-start"
    train, test = split_pairs(pairs, test_fraction=0.25, seed=0)
    texts = [p.positive for p in train] + [p.negative for p in train] + [p.positive for p in test] + [p.negative for p in test]
    acts = extract(tiny_model, reading_texts(tiny_model, texts, "assistant-start"), progress=False)
    a, b = len(train), len(test)
    fit = fit_probes(acts[:a], acts[a : 2 * a], acts[2 * a : 2 * a + b], acts[2 * a + b :])
    assert torch.equal(vec.weight, fit["weight"])
    bare = probe_value(tiny_model, pairs, threshold=0.0, exclude_last=1, progress=False)
    assert bare.meta["read_format"] == "bare" and not torch.equal(bare.weight, vec.weight)
    with pytest.raises(ValueError, match="read format"):
        probe_value(tiny_model, pairs, exclude_last=1, progress=False, read_format="middle")


def test_cli_probe_takes_the_read_format(tiny_folder, tmp_path):
    from workbench.cli import main
    from workbench.vectors import load_vector

    assert main(["probe", "--values", "power", "--model", str(tiny_folder), "--device", "cpu", "--threshold", "0.0",
                 "--exclude-last", "1", "--read-format", "user-end", "--out", str(tmp_path)]) == 0
    assert load_vector(tmp_path / "vectors" / "power.safetensors").meta["read_format"] == "user-end"
