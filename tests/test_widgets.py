import ipywidgets as w
import plotly.graph_objects as go
import pytest
from helpers import spec_of, synthetic_vector

import workbench.widgets as widgets_mod
from workbench.constants import DEFAULT_GATE_KIND
from workbench.gate import save_gate, train_gate
from workbench.generation import generate
from workbench.sweep import steering_defaults
from workbench.vectors import save_vector
from workbench.widgets import DemoResult, SteeringDemo, answers_html, load_gates, load_vectors, parse_layers, run_demo

PROMPT = "Should I take charge of the team?"


@pytest.fixture(scope="module")
def vectors(tiny_model):
    return {"power": synthetic_vector(tiny_model)}


def test_parse_layers():
    assert parse_layers("1, 2;3 4") == (1, 2, 3, 4)
    assert parse_layers([2, 1]) == (2, 1)
    assert parse_layers("") is None and parse_layers(None) is None
    with pytest.raises(ValueError, match="whole numbers"):
        parse_layers("1,two")


def test_run_demo_without_gate_steers_and_audits(tiny_model, vectors):
    r = run_demo(tiny_model, vectors, {}, "Power", PROMPT, p0=0.99, method="conva-nogate", max_new_tokens=8)
    assert isinstance(r, DemoResult) and r.value == "power" and r.method == "conva-nogate"
    assert r.fired and r.gate_score is None and r.g0 is None
    assert [rec["layer"] for rec in r.layers] == [1, 2]
    assert all(rec["p_after"] >= 0.99 - 1e-3 for rec in r.layers)
    assert r.unsteered != r.steered
    assert isinstance(r.figure, go.Figure) and len(r.figure.data) == 3


def test_run_demo_gate_is_trained_once_and_cached(tiny_model, vectors):
    gates = {}
    first = run_demo(tiny_model, vectors, gates, "power", PROMPT, method="conva", g0=0.01, max_new_tokens=4)
    assert list(gates) == [f"power:{DEFAULT_GATE_KIND}"] and first.g0 == 0.01
    gate = gates[f"power:{DEFAULT_GATE_KIND}"]
    assert first.gate_score is not None and first.fired
    closed = run_demo(tiny_model, vectors, gates, "power", PROMPT, method="conva", g0=0.999999, max_new_tokens=4)
    assert gates[f"power:{DEFAULT_GATE_KIND}"] is gate  # cached, not retrained
    assert not closed.fired and closed.steered == closed.unsteered
    assert all(rec["eps"] == 0 for rec in closed.layers)  # audited, but nothing shifted
    assert "gate closed" in closed.figure.layout.title.text
    calibrated = run_demo(tiny_model, vectors, gates, "power", PROMPT, method="conva", max_new_tokens=4)
    assert calibrated.g0 == gate.g0


def test_run_demo_layers_mode_and_caa(tiny_model, vectors):
    r = run_demo(tiny_model, vectors, {}, "power", PROMPT, method="conva-nogate", mode="per-step", layers="2",
                 max_new_tokens=4)
    assert [rec["layer"] for rec in r.layers] == [2] and r.mode == "per-step"
    caa = run_demo(tiny_model, vectors, {}, "power", PROMPT, method="caa", max_new_tokens=4)
    assert caa.fired and caa.layers == () and caa.figure is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"value": "tradition"}, "No value vector for 'tradition'"),
    ({"prompt": "  "}, "prompt is empty"),
    ({"method": "none"}, "Unknown method"),
    ({"p0": 1.0}, "p0 must be a probability"),
    ({"layers": "x"}, "whole numbers"),
    ({"layers": "9"}, "invalid"),
])
def test_run_demo_errors(tiny_model, vectors, kwargs, message):
    args = {"value": "power", "prompt": PROMPT, "method": "conva-nogate", "max_new_tokens": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        run_demo(tiny_model, vectors, {}, **args)


def test_answers_html_side_by_side_and_escaped():
    r = DemoResult("power", "p", "conva", "prompt-once", 0.95, 0.6, "<b>plain</b>", "steered & more", 0.81, True, (),
                   None)
    page = answers_html(r)
    assert "&lt;b&gt;plain&lt;/b&gt;" in page and "steered &amp; more" in page
    assert "gate score <b>0.810</b> vs g0 0.600" in page and "steering fired" in page
    assert page.index("unsteered") < page.index("steered</b>")


def test_load_vectors(tiny_model, vectors, tmp_path):
    save_vector(vectors["power"], tmp_path / "power.safetensors")
    assert list(load_vectors(tmp_path)) == ["power"]
    with pytest.raises(FileNotFoundError, match="workbench probe"):
        load_vectors(tmp_path / "empty")


def test_widget_builds_and_runs(tiny_model, vectors):
    demo = SteeringDemo(tiny_model, vectors, prompt=PROMPT, max_new_tokens=4)
    assert isinstance(demo.widget, w.VBox)
    assert demo.value.options == ("power",) and demo.method.value == "conva" and demo.g0.disabled
    assert demo.p0.value == pytest.approx(steering_defaults("power").p0)  # the swept default
    demo.calibrated.value = False
    assert not demo.g0.disabled
    demo.method.value, demo.p0.value = "conva-nogate", 0.99
    result = demo.run()
    assert result is demo.last and result.fired and "steered" in demo.answers.value
    assert demo.status.value == "" and not demo.button.disabled
    demo.prompt.value = ""
    assert demo.run() is None and "prompt is empty" in demo.status.value
    assert demo.last is result
    with pytest.raises(ValueError, match="at least one value vector"):
        SteeringDemo(tiny_model, {})


def test_caa_runs_at_the_swept_coefficient_not_generates_default(tiny_model, vectors, monkeypatch):
    """The CAA baseline steers at the value's swept coefficient (power: not 4.0, generate()'s default)."""
    swept = steering_defaults("power").coef
    assert swept != 4.0
    calls = []  # the steering settings of each generate() call, as a spec

    def recording(*args, **kwargs):
        calls.append(spec_of(args, kwargs))
        return generate(*args, **kwargs)

    monkeypatch.setattr(widgets_mod, "generate", recording)
    r = run_demo(tiny_model, vectors, {}, "power", PROMPT, method="caa", max_new_tokens=4)
    steered = [c for c in calls if c.method == "caa"]
    assert len(steered) == 1 and steered[0].coef == swept
    direct = generate(tiny_model, [PROMPT], vector=vectors["power"], method="caa", coef=swept, max_new_tokens=4)
    assert r.steered == direct.texts[0] and r.coef == swept
    assert f"method caa (prompt-once), coef {swept:g}." in answers_html(r)
    run_demo(tiny_model, vectors, {}, "power", PROMPT, method="caa", coef=2.5, max_new_tokens=4)
    assert calls[-1].coef == 2.5


def test_widget_lists_every_value_and_uses_given_gates(tiny_model, vectors, tmp_path, monkeypatch):
    many = {"security": vectors["power"], "power": vectors["power"], "honesty": vectors["power"]}
    gate = train_gate(tiny_model, "power")
    save_gate(gate, tmp_path / "gates" / "power.safetensors")
    gates = load_gates(tmp_path / "gates", model=tiny_model)
    assert list(gates) == [f"power:{DEFAULT_GATE_KIND}"] and load_gates(tmp_path / "none") == {}
    monkeypatch.setattr(widgets_mod, "train_gate", lambda *a, **k: pytest.fail("a given gate was retrained"))
    demo = SteeringDemo(tiny_model, many, prompt=PROMPT, max_new_tokens=4, gates=gates, value="power")
    assert demo.value.options == ("power", "security", "honesty") and demo.value.value == "power"
    result = demo.run()
    assert result is not None and result.g0 == gate.g0 and result.gate_score is not None
    demo.value.value = "security"
    assert demo.p0.value == pytest.approx(steering_defaults("security").p0)
