import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from workbench.generation import PromptAudit
from workbench.plots import (
    SimilarityMap,
    accuracy_curves,
    circumplex_agreement,
    plot_audit,
    plot_capability,
    plot_evaluation,
    plot_layer_sweep,
    plot_prompt_audit,
    plot_similarity,
    plot_sweep_grid,
    plot_value_map,
    plot_value_sweep,
    similarity_map,
)
from workbench.stats import wilson_interval
from workbench.values import VALUE_NAMES, get_value
from workbench.vectors import ValueVector

N_LAYERS, D = 6, 8


def make_vector(value: str, directions: torch.Tensor | None = None, seed: int = 0) -> ValueVector:
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(N_LAYERS, D, generator=g) if directions is None else directions
    acc = torch.linspace(0.6, 0.95, N_LAYERS)
    return ValueVector(value, weight, torch.zeros(N_LAYERS), torch.zeros(N_LAYERS, D), torch.ones(N_LAYERS), acc,
                       (2, 3), {})


def ring_vectors() -> list[ValueVector]:
    """Unit directions on a circle in circumplex order: neighbours similar, opposites opposite."""
    out = []
    for v in VALUE_NAMES:
        angle = 2 * math.pi * get_value(v).position / len(VALUE_NAMES)
        d = torch.zeros(D)
        d[0], d[1] = math.cos(angle), math.sin(angle)
        out.append(make_vector(v, d.repeat(N_LAYERS, 1)))
    return out


def rows_for(values=("power", "security")):
    return [{"value": v, "layer": str(layer), "train_acc": "1.0", "test_acc": str(0.5 + 0.08 * layer)}
            for v in values for layer in range(N_LAYERS)]


def titles(fig: go.Figure) -> str:
    return fig.layout.title.text or ""


def test_accuracy_curves_from_rows_and_vectors_in_circumplex_order():
    curves = accuracy_curves(rows_for(("security", "power")))
    assert list(curves) == ["power", "security"]
    assert curves["power"].layers == tuple(range(N_LAYERS)) and curves["power"].steering_layers == ()
    assert accuracy_curves([make_vector("tradition")])["tradition"].steering_layers == (2, 3)
    with pytest.raises(ValueError, match="lacks columns"):
        accuracy_curves([{"value": "power", "layer": 0}])
    with pytest.raises(ValueError, match="No accuracy data"):
        accuracy_curves([])


@pytest.mark.parametrize("source", ["rows", "vectors"])
def test_layer_sweep_one_trace_per_value(source):
    data = rows_for(("power", "security", "benevolence")) if source == "rows" else [
        make_vector(v, seed=i) for i, v in enumerate(("power", "security", "benevolence"))]
    fig = plot_layer_sweep(data)
    assert isinstance(fig, go.Figure) and len(fig.data) == 3
    assert [t.name for t in fig.data] == ["power", "security", "benevolence"]
    assert "accuracy" in titles(fig).lower()
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="split"):
        plot_layer_sweep(data, split="dev")


def test_value_sweep_train_test_and_steering_layers():
    fig = plot_value_sweep(make_vector("power"))
    assert [t.name for t in fig.data] == ["train", "test", "steering layers"]
    assert list(fig.data[2].x) == [2, 3]
    assert "power" in titles(fig) and fig.layout.xaxis.title.text == "layer (residual stream after block)"
    fig = plot_value_sweep(rows_for(), value="security")
    assert [t.name for t in fig.data] == ["train", "test"]
    with pytest.raises(ValueError, match="pass value"):
        plot_value_sweep(rows_for())
    with pytest.raises(ValueError, match="No accuracy data for 'hedonism'"):
        plot_value_sweep(rows_for(), value="hedonism")


def test_sweep_grid_panels():
    fig = plot_sweep_grid([make_vector(v, seed=i) for i, v in enumerate(VALUE_NAMES)])
    # 3 traces per panel + 3 legend-only entries
    assert len(fig.data) == 10 * 3 + 3
    assert [a.text for a in fig.layout.annotations[:10]] == list(VALUE_NAMES)
    assert fig.layout.yaxis.title.text == "accuracy" and fig.layout.xaxis6.title.text == "layer"


def test_similarity_map_layer_rules():
    vecs = [make_vector(v, seed=i) for i, v in enumerate(("benevolence", "power", "hedonism"))]
    sim = similarity_map(vecs, "middle")
    assert sim.values == ("hedonism", "power", "benevolence") and sim.layers == (3, 3, 3)
    assert np.allclose(np.diag(sim.matrix), 1.0) and np.allclose(sim.matrix, sim.matrix.T)
    assert "layer 3 (middle layer)" in sim.layer_label
    assert similarity_map(vecs, 1).layers == (1, 1, 1)
    assert similarity_map(vecs, "best").layers == (N_LAYERS - 1,) * 3
    assert "best mean test accuracy" in similarity_map(vecs, "best-mean").layer_label
    with pytest.raises(ValueError, match="out of range"):
        similarity_map(vecs, 99)
    with pytest.raises(ValueError, match="layer must be"):
        similarity_map(vecs, "top")
    with pytest.raises(ValueError, match="at least two"):
        similarity_map(vecs[:1])


def test_circumplex_agreement_sign_on_constructed_cases():
    ring = similarity_map(ring_vectors())
    rho = circumplex_agreement(ring)
    assert rho < -0.95  # cosine falls exactly with circular distance (ties aside)
    flipped = SimilarityMap(ring.values, -ring.matrix, ring.layers, ring.layer_rule)
    assert circumplex_agreement(flipped) == pytest.approx(-rho)
    with pytest.raises(ValueError, match="three values"):
        circumplex_agreement(SimilarityMap(("power", "security"), np.eye(2), (0, 0), "x"))


def test_similarity_heatmap_and_map():
    sim = similarity_map(ring_vectors())
    fig = plot_similarity(sim)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    assert list(fig.data[0].x) == list(VALUE_NAMES)
    assert "layer 3 (middle layer)" in titles(fig) and "Spearman" in titles(fig)
    fig = plot_value_map(sim)
    assert len(fig.data) == 1 + 4  # the ring + one trace per higher-order group
    assert [t.name for t in fig.data[1:]] == ["openness to change", "self-enhancement", "conservation",
                                            "self-transcendence"]
    assert len(fig.data[0].x) == 11  # closed ring
    assert fig.layout.xaxis.title.text == "MDS dimension 1" and "MDS" in titles(fig)
    # a ring of unit vectors comes back as a ring: neighbours closer than opposites
    xy = np.c_[np.r_[tuple(t.x for t in fig.data[1:])], np.r_[tuple(t.y for t in fig.data[1:])]]
    assert np.linalg.norm(xy[0] - xy[1]) < np.linalg.norm(xy[0] - xy[5])


def test_audit_bars():
    rows = [{"value": v, "dataset": ds, "unique_share": s} for v in ("power", "tradition")
            for ds, s in (("controlled", "0.2"), ("naive", "0.8"))]
    fig = plot_audit(rows)
    assert len(fig.data) == 2 and all(isinstance(t, go.Bar) for t in fig.data)
    assert fig.data[0].name.startswith("controlled (mean 20%)")
    assert "audit" in titles(fig).lower() and fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="lacks columns"):
        plot_audit([{"value": "power"}])
    with pytest.raises(ValueError, match="empty"):
        plot_audit([])


def test_evaluation_bars_from_hand_made_table():
    rows = [{"value": v, "method": m, "condition": c, "csr": str(p), "fluency": "0.9", "n": "20"}
            for v in ("power", "achievement", "all") for m, p in (("none", 0.1), ("conva", 0.7))
            for c in ("default", "negative prompt")]
    fig = plot_evaluation(rows)
    assert len(fig.data) == 2 * 2 * 2  # methods x metrics x conditions
    assert [t.name for t in fig.data[:2]] == ["none", "conva"]
    assert sum(t.showlegend is not False for t in fig.data) == 2
    assert list(fig.data[0].x) == ["achievement", "power", "all"]
    lo, hi = wilson_interval(0.7, 20)
    assert fig.data[1].error_y.array[0] == pytest.approx(hi - 0.7)
    assert fig.data[1].error_y.arrayminus[0] == pytest.approx(0.7 - lo)
    assert "95% Wilson interval, n = 20" in fig.layout.title.text
    assert "Control success" in titles(fig)
    assert {a.text for a in fig.layout.annotations} >= {"control success rate — default", "fluency rate — negative prompt"}
    with pytest.raises(ValueError, match="fluency"):
        plot_evaluation([{"value": "power", "method": "x", "condition": "y", "csr": 1, "n": 1}])


def test_evaluation_bars_are_not_certain_at_small_n():
    """3 of 3 answers judged on-value is no proof: the bar's interval reaches well below 1 (a standard error is 0)."""
    rows = [{"value": "power", "method": "conva", "condition": "plain", "csr": "1.0", "fluency": "0.0", "n": "3"}]
    fig = plot_evaluation(rows)
    csr, fluency = fig.data
    assert csr.error_y.array[0] == pytest.approx(0.0) and csr.error_y.arrayminus[0] > 0.4
    assert fluency.error_y.arrayminus[0] == pytest.approx(0.0) and fluency.error_y.array[0] > 0.4


def test_capability_bars_leave_out_the_gate_open_share():
    rows = [{"method": m, "benchmark": b, "score": str(s), "n": "300"} for m, b, s in (
        ("none", "mmlu_5shot", 0.46), ("conva", "mmlu_5shot", 0.45), ("conva", "mmlu_5shot_gate_open_share", 0.02),
        ("conva-nogate", "mmlu_5shot", 0.30), ("none", "wikitext_ppl", 9.1), ("conva-nogate", "wikitext_ppl", 12.0))]
    fig = plot_capability(rows)
    mmlu = [t for t in fig.data if t.xaxis == "x"]
    assert [(t.x[0], t.y[0]) for t in mmlu] == [("none", 0.46), ("conva", 0.45), ("conva-nogate", 0.30)]
    lo, hi = wilson_interval(0.30, 300)
    assert (mmlu[2].error_y.arrayminus[0], mmlu[2].error_y.array[0]) == pytest.approx((0.30 - lo, hi - 0.30))
    assert [t.y[0] for t in fig.data if t.xaxis == "x2"] == [9.1, 12.0]
    assert "MMLU accuracy (5-shot, n = 300)" in {a.text for a in fig.layout.annotations}
    with pytest.raises(ValueError, match="benchmark"):
        plot_capability([{"method": "none", "score": 1, "n": 1}])


def test_prompt_audit_figure():
    audit = PromptAudit(0.93, True, tuple({"layer": layer, "p_before": 0.2, "p_after": 0.95, "eps": 1.5 + layer}
                                          for layer in (3, 4, 5)))
    fig = plot_prompt_audit(audit, p0=0.95, title="Should I run for office?")
    assert [t.name for t in fig.data] == ["P_V before", "P_V after", "ε (shift along v)"]
    assert list(fig.data[2].y) == [4.5, 5.5, 6.5]
    assert "gate score 0.930" in titles(fig) and "Should I run for office?" in titles(fig)
    assert fig.layout.xaxis2.title.text == "steered layer" and fig.layout.yaxis.title.text == "P_V"
    with pytest.raises(ValueError, match="no steered layers"):
        plot_prompt_audit(PromptAudit(0.1, False, ()))


def test_concepts_of_your_own_plot_after_the_circumplex_and_skip_its_distances():
    ring = ring_vectors()
    honesty = make_vector("honesty", seed=3)
    curves = accuracy_curves([honesty, *ring[:3]])
    assert list(curves)[-1] == "honesty" and list(curves)[:3] == list(VALUE_NAMES[:3])
    fig = plot_layer_sweep([honesty, *ring[:3]])
    trace = next(t for t in fig.data if t.name == "honesty")
    assert trace.legendgroup == "own concepts" and trace.line.color == "#555555"
    assert "honesty" in titles(plot_value_sweep(honesty))
    sim = similarity_map([*ring, honesty])
    assert sim.values[-1] == "honesty" and sim.matrix.shape == (11, 11)
    assert circumplex_agreement(sim) == pytest.approx(circumplex_agreement(similarity_map(ring)))
    with pytest.raises(ValueError, match="at least three values"):
        circumplex_agreement(similarity_map([ring[0], ring[1], honesty]))
