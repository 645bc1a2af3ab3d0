import json

import numpy as np
import pytest
from helpers import spec_of

import workbench.evaluation.answer_cache as answer_cache_mod
import workbench.evaluation.suite as suite_mod
import workbench.evaluation.suite_capability as capability_mod
from workbench.evaluation.judges import train_encoder_judge
from workbench.evaluation.suite import SuiteConfig, run_suite


def test_encoder_judge_prefers_value_laden_text():
    judge = train_encoder_judge("benevolence")
    p = judge.probability(["She stayed up all night caring for her sick brother and cooked for him.",
                           "He kept the money his friend lent him and refused to pay it back."])
    assert p[0] > p[1]
    assert judge.judge(["She stayed up all night caring for her sick brother."]).tolist() == [True]


class KeywordJudge:
    """A cheap, deterministic stand-in judge: the suite's bookkeeping is under test here, not the judge."""

    def judge(self, texts, questions=None):
        return np.array(["e" in t for t in texts])


def _run(model, cfg):
    return run_suite(model, cfg, judge_factory=lambda value: KeywordJudge())


def _cfg(tmp_path, **kw):
    return SuiteConfig(values=("power",), methods=("none", "conva-nogate"), out=tmp_path, limit=3,
                       max_new_tokens=4, batch_size=2, exclude_last=1, progress=False, **kw)


def test_suite_writes_tables_and_resume_gives_same_table(tiny_model, tmp_path, monkeypatch):
    full = _run(tiny_model, _cfg(tmp_path / "a"))
    assert {(r[1], r[2]) for r in full.results} == {(m, c) for m in ("none", "conva-nogate")
                                                     for c in ("plain", "negative-prompt")}
    header = (tmp_path / "a" / "results.csv").read_text().splitlines()[0]
    assert header == "value,method,condition,csr,fluency,n"
    assert "| power |" in (tmp_path / "a" / "summary.md").read_text()

    # Interrupt a second run after its first generation batch, then resume.
    real = answer_cache_mod.generate
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(answer_cache_mod, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_model, _cfg(tmp_path / "b"))
    monkeypatch.setattr(answer_cache_mod, "generate", real)
    cached = (tmp_path / "b" / "generations" / "power" / "none__plain.jsonl").read_text().splitlines()
    assert len(cached) == 2  # the first batch survived the interruption
    resumed = _run(tiny_model, _cfg(tmp_path / "b"))
    assert resumed.results == full.results

    # A new P0 regenerates ConVA only: the unsteered answers do not depend on it.
    methods = []
    monkeypatch.setattr(answer_cache_mod, "generate", lambda *a, **kw: methods.append(spec_of(a, kw).method) or real(*a, **kw))
    _run(tiny_model, _cfg(tmp_path / "b", p0=0.97))
    assert set(methods) == {"conva-nogate"}

    # So does another vector (here: the same value probed with other layers).
    from workbench.vectors import load_vector, save_vector

    path = tmp_path / "b" / "vectors" / "power.safetensors"
    vec = load_vector(path, model=tiny_model)
    save_vector(type(vec)(vec.value, vec.weight, vec.bias, vec.mean_diff, vec.train_acc, vec.test_acc,
                          vec.layers[:1], vec.meta), path)
    methods.clear()
    again = _run(tiny_model, _cfg(tmp_path / "b", p0=0.97))
    assert set(methods) == {"conva-nogate"}
    assert [r for r in again.results if r[1] == "none"] == [r for r in full.results if r[1] == "none"]


def test_unknown_method_is_clear_error(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="Unknown methods"):
        run_suite(tiny_model, SuiteConfig(values=("power",), methods=("magic",), out=tmp_path))


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_limit_must_be_a_positive_count(tmp_path, limit):
    with pytest.raises(ValueError, match="limit must be a positive number"):
        SuiteConfig(values=("power",), out=tmp_path, limit=limit)


def test_a_cache_line_without_an_answer_is_regenerated(tiny_model, tmp_path):
    cfg = _cfg(tmp_path)
    _run(tiny_model, cfg)
    path = tmp_path / "generations" / "power" / "none__plain.jsonl"
    lines = path.read_text().splitlines()
    broken = [{k: v for k, v in json.loads(line).items() if k != "answer"} for line in lines]
    path.write_text("\n".join(json.dumps(r) for r in broken) + "\n")
    _run(tiny_model, cfg)  # before: KeyError 'answer'
    answered = [json.loads(line) for line in path.read_text().splitlines() if '"answer"' in line]
    assert len(answered) == len(lines) == 3


def test_suite_mmlu_reuses_unsteered_predictions_only_where_the_gate_is_closed(tiny_model, tmp_path, monkeypatch):
    from test_evaluation_metrics import _mmlu_folder

    from workbench.evaluation.capability import load_mmlu, mmlu_accuracy
    from workbench.gate import load_gate
    from workbench.steering import steer
    from workbench.vectors import load_vector

    (tmp_path / "mmlu").mkdir()
    folder = _mmlu_folder(tmp_path / "mmlu")
    cfg = _cfg(tmp_path / "out", mmlu=folder, mmlu_shots=1, p0=0.95)
    cfg = SuiteConfig(**{**cfg.__dict__, "methods": ("none", "conva", "conva-nogate")})
    first = _run(tiny_model, cfg).capability
    got = {(m, b): s for m, b, s, n in first}
    items = load_mmlu(folder, n=None, k_shot=1)
    vec = load_vector(tmp_path / "out" / "vectors" / "power.safetensors", model=tiny_model)
    gate = load_gate(tmp_path / "out" / "gates" / "power.safetensors", model=tiny_model)

    def reference(gate_open):  # every question run through the steered model, gate as in generation
        return mmlu_accuracy(tiny_model, items, progress=False, batch_size=1, steering=lambda b: steer(
            tiny_model, vec, p0=cfg.p0, gate_open=gate_open(b), mode=cfg.mode))

    assert got[("none", "mmlu_1shot")] == mmlu_accuracy(tiny_model, items, progress=False)
    assert got[("conva", "mmlu_1shot")] == reference(lambda b: gate.is_open([it.question for it in b], tiny_model))
    assert got[("conva-nogate", "mmlu_1shot")] == reference(lambda b: True)
    opened = gate.is_open([it.question for it in items], tiny_model).float().mean().item()
    assert got[("conva", "mmlu_1shot_gate_open_share")] == opened

    # The predictions are saved: a second run reads them instead of running the model again.
    saved = sorted(p.name for p in (tmp_path / "out" / "mmlu").iterdir())
    assert "none__2xmmlu_1shot.json" in saved and "conva-nogate__power__2xmmlu_1shot.json" in saved
    monkeypatch.setattr(capability_mod, "mmlu_predictions", lambda *a, **kw: pytest.fail("MMLU was run again"))
    assert _run(tiny_model, cfg).capability == first


def test_suite_scores_with_the_configured_judge_and_records_it(tiny_model, tmp_path):
    import json

    result = run_suite(tiny_model, _cfg(tmp_path, judge="touche"))
    assert "Value judge: `touche`" in result.summary
    meta = json.loads((tmp_path / "judge.json").read_text())
    assert meta["judge"] == "touche" and set(meta["thresholds"]) == {"power"}
    with pytest.raises(ValueError, match="Unknown judge"):
        run_suite(tiny_model, _cfg(tmp_path / "b", judge="gpt"))


@pytest.mark.parametrize(("extra", "message"), [
    (["--limit", "0"], "--limit must be >= 1"),
    (["--limit", "-1"], "--limit must be >= 1"),
    (["--mmlu", "no/such/mmlu"], "--mmlu no/such/mmlu does not exist"),
    (["--wikitext", "no/such/valid.txt"], "--wikitext no/such/valid.txt does not exist"),
    (["--coef", "inf"], "--coef must be a finite number"),
])
def test_cli_evaluate_checks_cheap_arguments_before_the_model_and_generation(tmp_path, monkeypatch, capsys, extra,
                                                                            message):
    import workbench.cli as cli

    monkeypatch.setattr(cli.common, "load", lambda args: pytest.fail("the model was loaded before the arguments were checked"))
    monkeypatch.setattr(suite_mod, "run_suite", lambda *a, **k: pytest.fail("the suite ran"))
    assert cli.main(["evaluate", "--values", "power", "--out", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_conditions_can_be_chosen(tiny_model, tmp_path):
    result = _run(tiny_model, _cfg(tmp_path, conditions=("plain",)))
    assert {r[2] for r in result.results} == {"plain"}
    assert "negative-prompt" not in result.summary
    with pytest.raises(ValueError, match="Unknown or no conditions"):
        _cfg(tmp_path, conditions=("sunny",))


def test_gated_answers_are_read_off_the_unsteered_and_ungated_ones(tiny_model, tmp_path, monkeypatch):
    import shutil

    import torch

    from workbench.gate import Gate

    _run(tiny_model, _cfg(tmp_path / "a", conditions=("plain",)))  # trains the vector and gate, caches none/nogate
    shutil.copytree(tmp_path / "a" / "vectors", tmp_path / "b" / "vectors")
    shutil.copytree(tmp_path / "a" / "gates", tmp_path / "b" / "gates")
    # A gate that opens only where the length is a multiple of 3 (1 of the first 3 prompts), so both sources are used.
    monkeypatch.setattr(Gate, "score", lambda self, texts, model=None, twin=None:
                        torch.tensor([float(len(t) % 3 == 0) for t in texts]))
    real, methods = answer_cache_mod.generate, []
    monkeypatch.setattr(answer_cache_mod, "generate", lambda *a, **kw: methods.append(spec_of(a, kw).method) or real(*a, **kw))

    def conva_records(out, cfg_methods):
        _run(tiny_model, SuiteConfig(**{**_cfg(out, conditions=("plain",)).__dict__, "methods": cfg_methods}))
        lines = (out / "generations" / "power" / "conva__plain.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    generated = conva_records(tmp_path / "b", ("conva",))  # nothing cached: generated with the gate
    assert set(methods) == {"conva"} and {r["fired"] for r in generated} == {True, False}
    methods.clear()
    composed = conva_records(tmp_path / "a", ("none", "conva-nogate", "conva"))
    assert methods == []  # every answer came from the cache
    assert [r["answer"] for r in composed] == [r["answer"] for r in generated]
    assert [r["fired"] for r in composed] == [r["fired"] for r in generated]
    assert [r["answer_of"] for r in composed] == ["conva-nogate" if r["fired"] else "none" for r in generated]


def test_naive_answers_are_generated_not_read_off_the_controlled_vectors_ungated_ones(tiny_model, tmp_path, monkeypatch):
    import torch

    from workbench.gate import Gate

    monkeypatch.setattr(Gate, "score", lambda self, texts, model=None, twin=None: torch.ones(len(texts)))  # all open
    cfg = SuiteConfig(**{**_cfg(tmp_path, conditions=("plain",)).__dict__, "methods": ("none", "conva-nogate")})
    _run(tiny_model, cfg)
    real, vectors = answer_cache_mod.generate, []
    monkeypatch.setattr(answer_cache_mod, "generate",
                        lambda *a, **kw: vectors.append(spec_of(a, kw).vector) or real(*a, **kw))
    _run(tiny_model, SuiteConfig(**{**cfg.__dict__, "methods": ("none", "conva-nogate", "conva-naive")}))
    from workbench.vectors import load_vector

    naive = answer_cache_mod.vector_key(load_vector(tmp_path / "vectors_naive" / "power.safetensors"))
    assert naive != answer_cache_mod.vector_key(load_vector(tmp_path / "vectors" / "power.safetensors"))
    assert vectors and {answer_cache_mod.vector_key(v) for v in vectors} == {naive}
    lines = (tmp_path / "generations" / "power" / "conva-naive__plain.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not any("answer_of" in json.loads(line) for line in lines)


def test_a_new_gate_regenerates_the_gated_answers_only(tiny_model, tmp_path, monkeypatch):
    from dataclasses import replace

    from workbench.gate import load_gate, save_gate

    cfg = SuiteConfig(**{**_cfg(tmp_path, conditions=("plain",)).__dict__, "methods": ("none", "conva-naive")})
    _run(tiny_model, cfg)
    path = tmp_path / "gates" / "power.safetensors"
    gate = load_gate(path, model=tiny_model)
    save_gate(replace(gate, g0=1.0 - (1.0 - gate.g0) / 2), path)  # a stricter threshold
    real, methods = answer_cache_mod.generate, []
    monkeypatch.setattr(answer_cache_mod, "generate", lambda *a, **kw: methods.append(spec_of(a, kw).method) or real(*a, **kw))
    _run(tiny_model, cfg)
    assert set(methods) == {"conva"}  # conva-naive generates as conva; the unsteered answers are kept
