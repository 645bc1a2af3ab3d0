"""The main job's last steps (workbench.demo): gates saved and reused, the steered example, the small evaluation."""

import io
import json

import pytest

import workbench.gate as gate_mod
from workbench.cli import main
from workbench.datasets import load_pairs
from workbench.demo import EVAL_METHODS, finish_demo, gate_path, load_saved_gate, wilson_table
from workbench.figures import build_figures
from workbench.probes import probe_value
from workbench.progress import spinner
from workbench.stats import wilson_interval
from workbench.vectors import save_vector


@pytest.fixture(scope="module")
def results(tiny_model, tmp_path_factory):
    """A results folder with a probed power vector, after finish_demo (2 prompts, 4 tokens)."""
    out = tmp_path_factory.mktemp("demo")
    vec = probe_value(tiny_model, load_pairs("power")[:24], fallback_top=3, exclude_last=1, progress=False)
    save_vector(vec, out / "vectors" / "power.safetensors")
    finish_demo(tiny_model, out, ["power"], limit=2, max_new_tokens=4, progress=False)
    return out


def test_finish_demo_writes_gate_example_and_evaluation(results):
    assert gate_path(results, "power").is_file()
    rec = json.loads((results / "steer.jsonl").read_text().splitlines()[0])
    assert rec["value"] == "power" and rec["method"] == "conva" and rec["layers"]
    assert rec["fired"] == (rec["gate_score"] > rec["g0"])
    rows = (results / "results.csv").read_text().splitlines()
    assert rows[0] == "value,method,condition,csr,fluency,n"
    assert {r.split(",")[1] for r in rows[1:]} == set(EVAL_METHODS)
    assert {r.split(",")[-1] for r in rows[1:]} == {"2"}
    summary = (results / "summary.md").read_text()
    assert "95% Wilson interval" in summary and "(n=2)" in summary and "n = 2" in summary
    assert json.loads((results / "judge.json").read_text())["judge"] == "touche"
    assert {"evaluation", "steering_audit"} <= set(build_figures(results).figures)


def test_saved_gates_are_loaded_not_retrained(results, tiny_model, monkeypatch):
    saved = load_saved_gate(results, "power", tiny_model)
    assert saved is not None and saved.value == "power"
    monkeypatch.setattr(gate_mod, "train_gate", lambda *a, **k: pytest.fail("the saved gate was retrained"))
    again = finish_demo(tiny_model, results, ["power"], evaluate=False, progress=False)
    assert again["power"].weight.equal(saved.weight) and again["power"].g0 == saved.g0
    assert load_saved_gate(results, "security", tiny_model) is None  # none saved


def test_steer_loads_the_saved_gate(results, tiny_folder, monkeypatch, capsys):
    monkeypatch.setattr(gate_mod, "train_gate", lambda *a, **k: pytest.fail("the saved gate was retrained"))
    code = main(["steer", "--value", "power", "--prompt", "Should I take charge of the team?", "--model", str(tiny_folder),
                 "--device", "cpu", "--vectors", str(results / "vectors"), "--max-new-tokens", "2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0 and f"loaded the saved power gate {gate_path(results, 'power')}" in err
    assert json.loads(out)["g0"] == load_saved_gate(results, "power", None).g0


def test_wilson_table_gives_interval_and_n_per_cell_and_pooled():
    rows = [("power", "none", "plain", 0.0, 1.0, 3), ("power", "conva", "plain", 1.0, 1.0, 3),
            ("achievement", "none", "plain", 1 / 3, 1.0, 3), ("achievement", "conva", "plain", 2 / 3, 1.0, 3),
            ("power", "none", "negative-prompt", 1.0, 1.0, 3)]
    table = wilson_table(rows)
    lo, _ = wilson_interval(1.0, 3)
    assert f"| power | 0.00 [0.00, {wilson_interval(0.0, 3)[1]:.2f}] (n=3) | 1.00 [{lo:.2f}, 1.00] (n=3) |" in table
    nlo, nhi = wilson_interval(1 / 6, 6)  # pooled: none 0 + 1 of 6 answers, conva 3 + 2 of 6
    clo, chi = wilson_interval(5 / 6, 6)
    assert f"| **all values** | 0.17 [{nlo:.2f}, {nhi:.2f}] (n=6) | 0.83 [{clo:.2f}, {chi:.2f}] (n=6) |" in table
    assert "negative" not in table and table.count("\n") == 5


def test_spinner_reports_time_and_failure():
    stream = io.StringIO()
    with spinner("training the power gate", stream=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training the power gate ..." and lines[1].startswith("training the power gate ... done in ")
    stream = io.StringIO()
    with pytest.raises(KeyError), spinner("generating", stream=stream):
        raise KeyError("x")
    assert "generating ... failed after" in stream.getvalue()
    quiet = io.StringIO()
    with spinner("x", stream=quiet, enabled=False):
        pass
    assert quiet.getvalue() == ""


def test_figures_default_to_the_results_folder(tmp_path, monkeypatch, capsys):
    """`workbench figures` without --out writes RESULTS/figures, not the committed figures/ of the checkout."""
    from test_figures import make_results

    made = make_results(tmp_path / "made")
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "--results", str(made), "--formats", "html"]) == 0
    assert (made / "figures" / "evaluation.html").is_file() and not (tmp_path / "figures").exists()
    assert f"to {made / 'figures'}" in capsys.readouterr().out
