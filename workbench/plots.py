"""Result -> plotly Figure. Every function returns a ``plotly.graph_objects.Figure``; none calls ``.show()``.

Inputs are the results the library returns (``ValueVector``, ``PromptAudit``) or the rows of the CSV
files the command line writes (``accuracy.csv``, ``audit.csv``, ``results.csv``) as dictionaries, e.g.
from ``csv.DictReader``. Values are always drawn in circumplex order, coloured by higher-order group.

Example:
    >>> import csv
    >>> from workbench.plots import plot_layer_sweep
    >>> rows = list(csv.DictReader(open("out/accuracy.csv")))
    >>> fig = plot_layer_sweep(rows)
    >>> fig.write_html("accuracy.html")

This module draws the probing results (accuracy per layer, direction similarity, the value map); the
tables and single runs are drawn by :mod:`workbench.result_plots`, the shared style is
:mod:`workbench.plot_style`. Both are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.analysis import (  # re-exported: the analysis lived here before
    AccuracyCurve,
    SimilarityMap,
    accuracy_curves,
    circumplex_agreement,
    circumplex_sorted,  # noqa: F401 (re-exported)
    classical_mds,
    similarity_map,
)
from workbench.constants import EXCLUDE_LAST, PROBE_THRESHOLD
from workbench.plot_style import GROUP_COLORS, OWN_COLOR, group_of, layout, style
from workbench.result_plots import plot_audit, plot_capability, plot_evaluation, plot_prompt_audit
from workbench.values import GROUPS, value_name
from workbench.vectors import ValueVector

__all__ = [
    "GROUP_COLORS",
    "AccuracyCurve",
    "SimilarityMap",
    "accuracy_curves",
    "circumplex_agreement",
    "plot_audit",
    "plot_capability",
    "plot_evaluation",
    "plot_layer_sweep",
    "plot_prompt_audit",
    "plot_similarity",
    "plot_sweep_grid",
    "plot_value_map",
    "plot_value_sweep",
    "similarity_map",
]

# ---------------------------------------------------------------------------------------------- accuracy


def _threshold_marks(fig: go.Figure, n_layers: int, threshold: float | None, exclude_last: int, **where: Any) -> None:
    label = not where  # annotate single-panel figures only; small multiples explain the marks in the title
    font = {"size": 11, "color": "grey"}
    if threshold is not None:
        text = {"annotation_text": f"threshold {threshold:g}", "annotation_position": "bottom left",
                "annotation_font": font} if label else {}
        fig.add_hline(y=threshold, line={"color": "grey", "dash": "dash", "width": 1}, **text, **where)
    if exclude_last > 0 and n_layers > exclude_last:
        text = {"annotation_text": f"last {exclude_last}:<br>not steered", "annotation_position": "bottom",
                "annotation_font": font} if label else {}
        fig.add_vrect(x0=n_layers - exclude_last - 0.5, x1=n_layers - 0.5, fillcolor="lightgrey", opacity=0.35,
                      line_width=0, layer="below", **text, **where)


def plot_layer_sweep(
    data: Iterable[ValueVector] | Iterable[Mapping[str, Any]],
    split: str = "test",
    threshold: float | None = PROBE_THRESHOLD,
    exclude_last: int = EXCLUDE_LAST,
) -> go.Figure:
    """Probe accuracy per layer for every value in one figure (one line per value).

    The dashed line is the steering threshold; the grey band the last layers never steered.

    Example:
        >>> fig = plot_layer_sweep(vectors, split="test")
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    curves = accuracy_curves(data)
    fig = go.Figure()
    for name, c in curves.items():
        s = style(name)
        acc = c.test_acc if split == "test" else c.train_acc
        fig.add_trace(go.Scatter(x=list(c.layers), y=list(acc), name=name, mode="lines+markers",
                                 line={"color": s["color"], "dash": s["dash"], "width": 2},
                                 marker={"symbol": s["symbol"], "size": 5, "color": s["color"]},
                                 legendgroup=group_of(name),
                                 legendgrouptitle_text=group_of(name)))
    n_layers = max(max(c.layers) for c in curves.values()) + 1
    _threshold_marks(fig, n_layers, threshold, exclude_last)
    layout(fig, f"{split.capitalize()} accuracy of the linear value probes by layer", width=1000, height=560,
            legend={"groupclick": "toggleitem", "tracegroupgap": 8})
    fig.update_xaxes(title_text="layer (residual stream after block)", dtick=2, range=[-0.5, n_layers - 0.5])
    fig.update_yaxes(title_text=f"{split} accuracy", range=[0.4, 1.02])
    return fig


def _sweep_traces(c: AccuracyCurve, showlegend: bool) -> list[go.Scatter]:
    color = GROUP_COLORS.get(group_of(c.value), OWN_COLOR)
    traces = [
        go.Scatter(x=list(c.layers), y=list(c.train_acc), name="train", mode="lines", legendgroup="train",
                   line={"color": color, "dash": "dot", "width": 2}, showlegend=showlegend),
        go.Scatter(x=list(c.layers), y=list(c.test_acc), name="test", mode="lines+markers", legendgroup="test",
                   line={"color": color, "width": 2}, marker={"size": 5}, showlegend=showlegend),
    ]
    if c.steering_layers:
        idx = [c.layers.index(x) for x in c.steering_layers if x in c.layers]
        traces.append(go.Scatter(x=[c.layers[i] for i in idx], y=[c.test_acc[i] for i in idx], name="steering layers",
                                 mode="markers", legendgroup="steer", showlegend=showlegend,
                                 marker={"symbol": "star", "size": 10, "color": "black"}))
    return traces


def plot_value_sweep(
    data: Iterable[ValueVector] | Iterable[Mapping[str, Any]] | ValueVector,
    value: str | None = None,
    threshold: float | None = PROBE_THRESHOLD,
    exclude_last: int = EXCLUDE_LAST,
) -> go.Figure:
    """Train and test accuracy per layer for one value (steering layers starred when known).

    Example:
        >>> fig = plot_value_sweep(vector)                 # a ValueVector
        >>> fig = plot_value_sweep(rows, value="power")    # accuracy.csv rows
    """
    if isinstance(data, ValueVector):
        data, value = [data], value or data.value
    curves = accuracy_curves(data)
    if value is None:
        if len(curves) != 1:
            raise ValueError(f"The data hold {len(curves)} values; pass value=... (one of {list(curves)}).")
        value = next(iter(curves))
    name = value_name(value)
    if name not in curves:
        raise ValueError(f"No accuracy data for {name!r}; the data hold {list(curves)}.")
    c = curves[name]
    fig = go.Figure(_sweep_traces(c, showlegend=True))
    _threshold_marks(fig, max(c.layers) + 1, threshold, exclude_last)
    layout(fig, f"Probe accuracy by layer: {name}", width=800, height=460)
    fig.update_xaxes(title_text="layer (residual stream after block)", range=[-0.5, max(c.layers) + 0.5])
    fig.update_yaxes(title_text="accuracy", range=[0.4, 1.02])
    return fig


def plot_sweep_grid(
    data: Iterable[ValueVector] | Iterable[Mapping[str, Any]],
    threshold: float | None = PROBE_THRESHOLD,
    exclude_last: int = EXCLUDE_LAST,
    cols: int = 5,
) -> go.Figure:
    """Small multiples: train and test accuracy per layer, one panel per value, in circumplex order.

    Example:
        >>> fig = plot_sweep_grid(vectors)
    """
    curves = accuracy_curves(data)
    rows = math.ceil(len(curves) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(curves), shared_yaxes=True,
                        horizontal_spacing=0.02, vertical_spacing=0.16)
    for k, c in enumerate(curves.values()):
        r, col = k // cols + 1, k % cols + 1
        for t in _sweep_traces(c, showlegend=False):
            fig.add_trace(t, row=r, col=col)
        _threshold_marks(fig, max(c.layers) + 1, threshold, exclude_last, row=r, col=col)
        fig.update_xaxes(range=[-0.5, max(c.layers) + 0.5], row=r, col=col)
    # legend entries in neutral grey (the panels are coloured by group)
    key = [("train", {"dash": "dot"}, "lines", {}), ("test", {}, "lines+markers", {"size": 5})]
    if any(c.steering_layers for c in curves.values()):
        key.append(("steering layers", {}, "markers", {"symbol": "star", "size": 10, "color": "black"}))
    for name, line, mode, marker in key:
        fig.add_trace(go.Scatter(x=[None], y=[None], name=name, mode=mode, line={"color": "#444", "width": 2, **line},
                                 marker={"color": "#444", **marker}, showlegend=True), row=1, col=1)
    marks = []
    if threshold is not None:
        marks.append(f"dashed: threshold {threshold:g}")
    if exclude_last > 0:
        marks.append(f"grey: last {exclude_last} layers, never steered")
    if any(c.steering_layers for c in curves.values()):
        marks.append("stars: steering layers")
    sub = f"<br><sup>{'; '.join(marks)}</sup>" if marks else ""
    layout(fig, f"Train and test accuracy of the value probes by layer{sub}", width=1200, height=260 * rows + 140,
            legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.12 if rows > 1 else -0.25,
                    "traceorder": "normal"})
    fig.update_yaxes(range=[0.4, 1.02])
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="accuracy", row=r, col=1)
    for col in range(1, cols + 1):
        fig.update_xaxes(title_text="layer", row=rows, col=col)
    return fig


# ---------------------------------------------------------------------------------------------- similarity


def plot_similarity(sim: SimilarityMap) -> go.Figure:
    """Heatmap of cosine similarity between value directions, ordered round the circumplex.

    Example:
        >>> fig = plot_similarity(similarity_map(vectors, layer="middle"))
    """
    labels = list(sim.values)
    text = [[f"{x:.2f}" for x in row] for row in sim.matrix]
    lim = max(0.05, float(np.max(np.abs(sim.matrix - np.eye(len(labels))))))
    fig = go.Figure(go.Heatmap(z=sim.matrix, x=labels, y=labels, text=text, texttemplate="%{text}",
                               textfont={"size": 11}, colorscale="RdBu_r", zmin=-lim, zmax=lim,
                               colorbar={"title": {"text": "cosine", "side": "right"}},
                               hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"))
    rho = circumplex_agreement(sim) if len(labels) >= 3 else float("nan")
    layout(fig, f"Cosine similarity of value vectors, {sim.layer_label}<br>"
                 f"<sup>circumplex order; Spearman ρ(cosine, circular distance) = {rho:.2f}</sup>",
            width=820, height=760)
    fig.update_xaxes(title_text="value", tickangle=-40, side="bottom")
    fig.update_yaxes(title_text="value", autorange="reversed")
    return fig


def plot_value_map(sim: SimilarityMap) -> go.Figure:
    """2-D map (classical MDS of 1 - cosine) of the value vectors; the dotted ring joins the values in
    circumplex order and colours mark the four higher-order groups.

    Example:
        >>> fig = plot_value_map(similarity_map(vectors))
    """
    xy = classical_mds(np.asarray(sim.matrix, dtype=float))
    names = list(sim.values)
    ring = [*range(len(names)), 0]
    centre = xy.mean(axis=0)
    fig = go.Figure(go.Scatter(x=xy[ring, 0], y=xy[ring, 1], mode="lines", name="circumplex order",
                               line={"color": "grey", "dash": "dot", "width": 1}, hoverinfo="skip"))
    for group, members in GROUPS.items():
        idx = [names.index(m) for m in members if m in names]
        if not idx:
            continue
        # labels point away from the centre so neighbours overlap less
        where = ["top center" if xy[i, 1] >= centre[1] else "bottom center" for i in idx]
        fig.add_trace(go.Scatter(x=xy[idx, 0], y=xy[idx, 1], mode="markers+text", name=group,
                                 text=[names[i] for i in idx], textposition=where, textfont={"size": 13},
                                 marker={"size": 14, "color": GROUP_COLORS[group], "line": {"color": "white", "width": 1}}))
    pad = 0.15 * float(np.ptp(xy) or 1.0)
    layout(fig, f"Map of value vectors (classical MDS of 1 − cosine), {sim.layer_label}", width=860, height=700,
            legend={"title": {"text": "higher-order group"}})
    fig.update_xaxes(title_text="MDS dimension 1", range=[xy[:, 0].min() - pad, xy[:, 0].max() + pad], zeroline=False)
    fig.update_yaxes(title_text="MDS dimension 2", range=[xy[:, 1].min() - pad, xy[:, 1].max() + pad], zeroline=False,
                     scaleanchor="x", scaleratio=1)
    return fig
