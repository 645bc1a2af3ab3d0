"""The command line: a concept of your own end to end (probe, gate, gated steer, export), help and version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import build_parser, main

DATA = Path(__file__).parent / "data"
PAIRS = DATA / "honesty_pairs.jsonl"  # 30 pairs written for these tests
GATE_PROMPTS = DATA / "honesty_gate_prompts.txt"
PROMPT = "Should I tell my boss that I made the mistake in the report?"


def _model_args(folder: Path) -> list[str]:
    return ["--model", str(folder), "--device", "cpu"]


def _steer(folder: Path, vectors: Path, *extra: str) -> list[str]:
    return ["steer", "--value", "honesty", "--prompt", PROMPT, "--vectors", str(vectors), "--max-new-tokens", "3",
            *extra, *_model_args(folder)]


def test_own_concept_full_path_probe_gate_steer_export(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    # 1. probe from the pair file; 30 pairs leave 8 held out, so the small-split warning names the interval
    with pytest.warns(UserWarning, match=r"Only 8 held-out pairs \(16 test sentences\).*95% Wilson interval"):
        code = main(["probe", "--pairs", str(PAIRS), "--value", "honesty", "--out", str(out), "--exclude-last", "1",
                     "--fallback-top", "2", *_model_args(tiny_folder)])
    assert code == 0
    vec_path = out / "vectors" / "honesty.safetensors"
    assert vec_path.is_file()
    accuracy = (out / "accuracy.csv").read_text().splitlines()
    assert accuracy[0] == "value,layer,train_acc,test_acc" and all(r.startswith("honesty,") for r in accuracy[1:])
    capsys.readouterr()

    # 2. gate trained on the user's prompts, saved; 3. gated steer with a self-describing JSON record
    gate_path = tmp_path / "honesty_gate.safetensors"
    assert main(_steer(tiny_folder, out / "vectors", "--gate-prompts", str(GATE_PROMPTS), "--save-gate",
                       str(gate_path), "--json")) == 0
    captured = capsys.readouterr()
    assert gate_path.is_file() and f"saved the gate to {gate_path}" in captured.err
    record = json.loads(captured.out.strip().splitlines()[-1])
    for key in ("value", "method", "mode", "p0", "g0", "steering_layers", "model", "model_name", "model_fingerprint",
                "gate_score", "fired", "unsteered", "steered", "layers"):
        assert key in record, key
    assert record["value"] == "honesty" and record["method"] == "conva" and record["mode"] == "prompt-once"
    assert 0.5 <= record["g0"] < 1 and isinstance(record["p0"], float) and len(record["model_fingerprint"]) >= 8
    assert record["steering_layers"] == sorted(record["steering_layers"]) and record["steering_layers"]

    # the saved gate is loaded (not retrained); with g0 near 0 it opens and steering fires on every layer
    assert main(_steer(tiny_folder, out / "vectors", "--gate", str(gate_path), "--g0", "0.000001", "--json")) == 0
    captured = capsys.readouterr()
    opened = json.loads(captured.out.strip().splitlines()[-1])
    assert "training the" not in captured.err
    assert opened["fired"] is True and opened["note"] is None and opened["g0"] == 0.000001
    assert opened["gate_score"] == pytest.approx(record["gate_score"])
    # "layers" holds the per-layer audit that `workbench figures` reads from steer.jsonl
    assert [r["layer"] for r in opened["layers"]] == opened["steering_layers"]

    # the record is what `workbench figures` reads as steer.jsonl; the custom concept's curves plot too
    from workbench.figures import build_figures

    (out / "steer.jsonl").write_text(captured.out)
    built = build_figures(out)
    assert {"steering_audit", "accuracy_by_layer", "accuracy_per_value"} <= set(built.figures)
    assert any(t.name == "honesty" for t in built.figures["accuracy_by_layer"].data)

    # 4. export the custom vector for llama.cpp
    gguf = tmp_path / "honesty.gguf"
    assert main(["export-gguf", "--vector", str(vec_path), "--strength", "2", "--layers", "1,2", "--out", str(gguf)]) == 0
    assert gguf.is_file() and gguf.read_bytes()[:4] == b"GGUF"


def test_closed_gate_is_explained_in_the_output(tiny_folder, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="held-out pairs"):
        assert main(["probe", "--pairs", str(PAIRS), "--value", "honesty", "--out", str(out), "--exclude-last", "1",
                     "--fallback-top", "2", *_model_args(tiny_folder)]) == 0
    capsys.readouterr()
    args = _steer(tiny_folder, out / "vectors", "--gate-prompts", str(GATE_PROMPTS), "--g0", "0.999999")
    args[args.index(PROMPT)] = "What is 7 x 8?"
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "fired: False" in text and "g0 0.999999" in text
    note = next(line for line in text.splitlines() if line.startswith("note:"))
    assert "the gate stayed closed (score" in note and "<= g0 0.999999)" in note
    for hint in ("--g0", "--gate-prompts FILE", "--method conva-nogate"):
        assert hint in note
    unsteered = next(line for line in text.splitlines() if line.startswith("unsteered:"))[len("unsteered:"):]
    steered = next(line for line in text.splitlines() if line.startswith("steered:"))[len("steered:"):]
    assert unsteered.strip() == steered.strip()


def test_custom_concept_errors_say_what_to_do(tiny_folder, tmp_path, capsys):
    # no vector yet: no shipped pairs to fall back on
    assert main(_steer(tiny_folder, tmp_path / "none")) == 2
    assert "workbench probe --pairs FILE --value honesty" in capsys.readouterr().err
    # a vector but no gate prompts: the gate cannot be trained from shipped prompts
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="held-out pairs"):
        main(["probe", "--pairs", str(PAIRS), "--value", "honesty", "--out", str(out), "--exclude-last", "1",
              "--fallback-top", "2", *_model_args(tiny_folder)])
    capsys.readouterr()
    assert main(_steer(tiny_folder, out / "vectors")) == 2
    assert "--gate-prompts FILE" in capsys.readouterr().err
    # --gate with --gate-prompts is contradictory
    assert main(_steer(tiny_folder, out / "vectors", "--gate", "g.safetensors", "--gate-prompts", str(GATE_PROMPTS))) == 2
    assert "one or the other" in capsys.readouterr().err
    # a typo of a known value is not taken for a new concept
    assert main(["probe", "--pairs", str(PAIRS), "--value", "benevolance", "--out", str(out),
                 *_model_args(tiny_folder)]) == 2
    assert "Did you mean 'benevolence'" in capsys.readouterr().err


def test_probe_reads_csv_pair_files(tiny_folder, tmp_path, capsys):
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()]
    csv_path = tmp_path / "honesty.csv"
    csv_path.write_text("positive,negative\n" + "".join(f'"{r["positive"]}","{r["negative"]}"\n' for r in rows))
    with pytest.warns(UserWarning, match="held-out pairs"):
        assert main(["probe", "--pairs", str(csv_path), "--value", "honesty", "--out", str(tmp_path / "o"),
                     "--exclude-last", "1", "--fallback-top", "2", *_model_args(tiny_folder)]) == 0
    assert (tmp_path / "o" / "vectors" / "honesty.safetensors").is_file()


def _all_actions(parser):
    sub = parser._subparsers._group_actions[0]
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                yield name, p, action


def test_every_option_has_help_and_shows_its_default():
    parser = build_parser()
    missing = [f"{name} {a.option_strings[0]}" for name, _, a in _all_actions(parser) if not a.help]
    assert not missing, missing
    steer_help = parser._subparsers._group_actions[0].choices["steer"].format_help()
    assert "(default: conva)" in steer_help and "(default: prompt-once)" in steer_help
    assert "(default: 48)" in steer_help and "(default: out/vectors)" in steer_help


def test_version_and_help_do_not_import_torch():
    code = ("import sys\nfrom workbench.cli import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'transformer_lens') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "workbench.cli", "--version"], capture_output=True, text=True)
    from workbench import __version__

    assert version.returncode == 0 and version.stdout.strip() == f"workbench {__version__}"


def test_choice_constants_are_the_ones_the_modules_use():
    from workbench import constants
    from workbench.datasets import DATASETS
    from workbench.evaluation.judges import JUDGE_NAMES
    from workbench.evaluation.suite import SUITE_METHODS
    from workbench.gate import GATE_KINDS
    from workbench.generation import GENERATION_METHODS
    from workbench.model import DEFAULT_MODEL
    from workbench.steering import MODES

    assert (DATASETS, JUDGE_NAMES, SUITE_METHODS, GATE_KINDS, GENERATION_METHODS, DEFAULT_MODEL, MODES) == (
        constants.DATASETS, constants.JUDGE_NAMES, constants.SUITE_METHODS, constants.GATE_KINDS,
        constants.GENERATION_METHODS, constants.DEFAULT_MODEL, constants.MODES)
