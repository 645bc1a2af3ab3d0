"""The one-command reproduction on the tiny model: every stage runs, the report is written, a rerun resumes."""

import json

import pytest

import workbench.evaluation.answer_cache as answer_cache_mod
import workbench.probes as probes_mod
import workbench.sweep as sweep_mod
from workbench.reproduce import STAGES, ReproConfig, run_reproduction


def _cfg(tmp_path, **kw):
    return ReproConfig(out=tmp_path / "repro", values=("power", "achievement", "benevolence"), sweep_prompts=1,
                       sweep_tokens=2, max_new_tokens=2, limit=1, exclude_last=1, figure_formats=("html",),
                       model_name="tiny", progress=False, **kw)


@pytest.fixture
def counted(monkeypatch):
    calls = {"generate": 0, "probe": 0}

    def wrap(module, name, key):
        real = getattr(module, name)

        def counting(*a, **k):
            calls[key] += 1
            return real(*a, **k)

        monkeypatch.setattr(module, name, counting)

    wrap(answer_cache_mod, "generate", "generate")
    wrap(sweep_mod, "generate", "generate")
    wrap(probes_mod, "probe_value", "probe")
    return calls


def test_every_stage_runs_and_a_rerun_redoes_nothing(tiny_model, tmp_path, counted):
    cfg = _cfg(tmp_path)
    record = run_reproduction(tiny_model, cfg)
    assert list(record) == list(STAGES) and all(len(r["runs"]) == 1 for r in record.values())
    assert counted["probe"] == 6 and counted["generate"] > 0  # 3 values x (controlled, naive)
    out = cfg.out
    for name in ("accuracy.csv", "steering_defaults.json", "results.csv", "reproduction.md",
                 "results/claims.csv", "results/csr.csv", "results/csr_pooled.csv", "results/probes.csv",
                 "figures/evaluation.html"):
        assert (out / name).is_file(), name
    report = (out / "reproduction.md").read_text()
    claim_rows = (out / "results" / "claims.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in claim_rows] == ["csr", "negative", "capability", "circumplex"]
    assert "not testable here" in report  # no --mmlu: the capability claim cannot be checked
    assert report.count("(partial: 3 of 10 values)") == 2  # the CSR and negative-prompt verdicts
    defaults = json.loads((out / "steering_defaults.json").read_text())
    assert set(defaults["values"]) == {"power", "achievement", "benevolence"} and defaults["meta"]["judge"] == "touche"
    before = (out / "results.csv").read_text()
    counted.update(generate=0, probe=0)
    record = run_reproduction(tiny_model, cfg)
    assert counted == {"generate": 0, "probe": 0}
    assert (out / "results.csv").read_text() == before
    assert all(len(r["runs"]) == 2 for r in record.values())


def test_bad_inputs_fail_before_any_work(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="Unknown stages"):
        run_reproduction(tiny_model, _cfg(tmp_path), stages=("probe", "publish"))
    with pytest.raises(FileNotFoundError, match="--mmlu"):
        run_reproduction(tiny_model, _cfg(tmp_path, mmlu=tmp_path / "nope"))
    assert not (tmp_path / "repro").exists()


def test_cli_checks_paths_before_loading_a_model(tmp_path, capsys):
    from workbench.cli import main

    assert main(["reproduce", "--out", str(tmp_path / "r"), "--mmlu", str(tmp_path / "missing")]) == 2
    assert "--mmlu" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_capability_is_its_own_stage_and_the_suite_leaves_its_table(tiny_model, tmp_path, counted):
    from test_evaluation_metrics import _mmlu_folder

    from workbench.reproduce import CAPABILITY_METHODS

    (tmp_path / "mmlu").mkdir()
    cfg = _cfg(tmp_path, mmlu=_mmlu_folder(tmp_path / "mmlu"), mmlu_shots=1)
    run_reproduction(tiny_model, cfg, stages=("probe", "sweep", "capability"))
    table = (cfg.out / "capability.csv").read_text()
    assert {line.split(",")[0] for line in table.splitlines()[1:]} == set(CAPABILITY_METHODS)
    assert counted["generate"] > 0 and not (cfg.out / "results.csv").exists()  # generate: the sweep only
    run_reproduction(tiny_model, cfg, stages=("suite", "report"))
    assert (cfg.out / "capability.csv").read_text() == table  # the suite did not overwrite it
    assert "MMLU n=2" in (cfg.out / "reproduction.md").read_text()


def test_a_second_judge_scores_the_same_answers(tiny_model, tmp_path, counted, monkeypatch):
    import workbench.evaluation.suite as suite_mod

    cfg = _cfg(tmp_path)
    run_reproduction(tiny_model, cfg, stages=("probe", "sweep", "suite"))
    first = (cfg.out / "results.csv").read_text()
    counted.update(generate=0)
    used, real = [], suite_mod.load_judge
    monkeypatch.setattr(suite_mod, "load_judge", lambda name, *a, **k: used.append(name) or real(name, *a, **k))
    run_reproduction(tiny_model, ReproConfig(**{**cfg.__dict__, "second_judge": "pairs"}), stages=("suite", "report"))
    assert counted["generate"] == 0  # the answers are the cached ones
    assert used == ["pairs"] * 3 + ["touche"] * 3  # the second judge first, then the main one, per value
    assert (cfg.out / "results.csv").read_text() == first  # the main judge's table is unchanged
    second = (cfg.out / "results_pairs.csv").read_text().splitlines()
    assert len(second) == len(first.splitlines())
    claim_names = [row.split(",")[0] for row in (cfg.out / "results" / "claims.csv").read_text().splitlines()[1:]]
    assert claim_names[-2:] == ["csr (pairs judge)", "negative (pairs judge)"]
    assert (cfg.out / "results" / "csr_pairs.csv").is_file()
    assert "## CSR with 95% Wilson interval, and fluency, judged by pairs" in (cfg.out / "reproduction.md").read_text()
