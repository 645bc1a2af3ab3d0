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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.analysis import (  # re-exported: the analysis lived here before
    AccuracyCurve,
    SimilarityMap,
    accuracy_curves,
    circumplex_agreement,
    circumplex_sorted,
    classical_mds,
    similarity_map,
)
from workbench.stats import wilson_interval
from workbench.values import GROUPS, get_value, is_known_value, value_name
from workbench.vectors import ValueVector

__all__ = [
    "GROUP_COLORS",
    "AccuracyCurve",
    "SimilarityMap",
    "accuracy_curves",
    "circumplex_agreement",
    "plot_audit",
    "plot_evaluation",
    "plot_layer_sweep",
    "plot_prompt_audit",
    "plot_similarity",
    "plot_sweep_grid",
    "plot_value_map",
    "plot_value_sweep",
    "similarity_map",
]

# Okabe-Ito colours (colour-blind safe), one per higher-order group; members differ by dash and marker.
GROUP_COLORS: dict[str, str] = {
    "openness to change": "#E69F00",
    "self-enhancement": "#CC79A7",
    "conservation": "#0072B2",
    "self-transcendence": "#009E73",
}
_DASHES = ("solid", "dash", "dot")
_SYMBOLS = ("circle", "square", "diamond")
_METHOD_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
_FONT = {"family": "Arial, Helvetica, sans-serif", "size": 14}


# concepts of your own (not among the 10 values): one grey group after the circumplex
OWN_GROUP, OWN_COLOR = "own concepts", "#555555"


def _group(value: str) -> str:
    return get_value(value).group if is_known_value(value) else OWN_GROUP


def _style(value: str) -> dict[str, Any]:
    """Colour (group), dash and marker symbol (position inside the group) of one value."""
    if not is_known_value(value):
        return {"color": OWN_COLOR, "dash": "dashdot", "symbol": "x"}
    v = get_value(value)
    k = GROUPS[v.group].index(v.name)
    return {"color": GROUP_COLORS[v.group], "dash": _DASHES[k % 3], "symbol": _SYMBOLS[k % 3]}


def _layout(fig: go.Figure, title: str, width: int = 900, height: int = 520, **kwargs: Any) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"}, template="plotly_white", font=_FONT,
                      width=width, height=height, **kwargs)
    return fig


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
    threshold: float | None = 0.9,
    exclude_last: int = 5,
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
        s = _style(name)
        acc = c.test_acc if split == "test" else c.train_acc
        fig.add_trace(go.Scatter(x=list(c.layers), y=list(acc), name=name, mode="lines+markers",
                                 line={"color": s["color"], "dash": s["dash"], "width": 2},
                                 marker={"symbol": s["symbol"], "size": 5, "color": s["color"]},
                                 legendgroup=_group(name),
                                 legendgrouptitle_text=_group(name)))
    n_layers = max(max(c.layers) for c in curves.values()) + 1
    _threshold_marks(fig, n_layers, threshold, exclude_last)
    _layout(fig, f"{split.capitalize()} accuracy of the linear value probes by layer", width=1000, height=560,
            legend={"groupclick": "toggleitem", "tracegroupgap": 8})
    fig.update_xaxes(title_text="layer (residual stream after block)", dtick=2, range=[-0.5, n_layers - 0.5])
    fig.update_yaxes(title_text=f"{split} accuracy", range=[0.4, 1.02])
    return fig


def _sweep_traces(c: AccuracyCurve, showlegend: bool) -> list[go.Scatter]:
    color = GROUP_COLORS.get(_group(c.value), OWN_COLOR)
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
    threshold: float | None = 0.9,
    exclude_last: int = 5,
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
    _layout(fig, f"Probe accuracy by layer: {name}", width=800, height=460)
    fig.update_xaxes(title_text="layer (residual stream after block)", range=[-0.5, max(c.layers) + 0.5])
    fig.update_yaxes(title_text="accuracy", range=[0.4, 1.02])
    return fig


def plot_sweep_grid(
    data: Iterable[ValueVector] | Iterable[Mapping[str, Any]],
    threshold: float | None = 0.9,
    exclude_last: int = 5,
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
    _layout(fig, f"Train and test accuracy of the value probes by layer{sub}", width=1200, height=260 * rows + 140,
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
    _layout(fig, f"Cosine similarity of value vectors, {sim.layer_label}<br>"
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
    _layout(fig, f"Map of value vectors (classical MDS of 1 − cosine), {sim.layer_label}", width=860, height=700,
            legend={"title": {"text": "higher-order group"}})
    fig.update_xaxes(title_text="MDS dimension 1", range=[xy[:, 0].min() - pad, xy[:, 0].max() + pad], zeroline=False)
    fig.update_yaxes(title_text="MDS dimension 2", range=[xy[:, 1].min() - pad, xy[:, 1].max() + pad], zeroline=False,
                     scaleanchor="x", scaleratio=1)
    return fig


# ---------------------------------------------------------------------------------------------- tables


def _rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], what: str) -> list[Mapping[str, Any]]:
    rows = list(rows)
    if not rows:
        raise ValueError(f"The {what} table is empty.")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise ValueError(f"The {what} table lacks columns {missing}; expected {','.join(columns)}.")
    return rows


def plot_audit(rows: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Context-control audit: share of each side's top content words unique to that side, per value and dataset.

    Example:
        >>> fig = plot_audit(csv.DictReader(open("out/audit.csv")))
    """
    rows = _rows(rows, ("value", "dataset", "unique_share"), "audit (audit.csv)")
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in rows))
    values = circumplex_sorted(str(r["value"]) for r in rows)
    share = {(get_value(str(r["value"])).name, str(r["dataset"])): float(r["unique_share"]) for r in rows}
    colors = {"controlled": "#0072B2", "naive": "#D55E00"}
    fig = go.Figure()
    for k, ds in enumerate(datasets):
        color = colors.get(ds, _METHOD_COLORS[k % len(_METHOD_COLORS)])
        ys = [share.get((v, ds)) for v in values]
        mean = float(np.mean([y for y in ys if y is not None]))
        fig.add_trace(go.Bar(x=values, y=ys, name=f"{ds} (mean {mean:.0%})", marker_color=color,
                             texttemplate="%{y:.0%}", textposition="outside", textfont={"size": 11}))
        fig.add_hline(y=mean, line={"color": color, "dash": "dash", "width": 1})
    _layout(fig, "Context-control audit: top-25 content words unique to one side of the pairs",
            width=1000, height=520, barmode="group",
            legend={"title": {"text": "pair set (dashed: mean)"}, "orientation": "h", "x": 0.5, "xanchor": "center",
                    "y": 1.02, "yanchor": "bottom"})
    fig.update_xaxes(title_text="value", tickangle=-30)
    top = max(float(r["unique_share"]) for r in rows)
    fig.update_yaxes(title_text="unique share of top-25 words", tickformat=".0%", range=[0, min(1.05, top + 0.12)])
    return fig


def plot_evaluation(rows: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Control success rate and fluency by value and method (one row of panels per condition).

    Rows have columns ``value,method,condition,csr,fluency,n``; error bars are 95% Wilson intervals,
    honest at small n and at shares of 0 or 1 (where a standard error would claim certainty).
    A value named ``all`` (or ``mean``) is drawn last.

    Example:
        >>> fig = plot_evaluation(csv.DictReader(open("out/results.csv")))
    """
    rows = _rows(rows, ("value", "method", "condition", "csr", "fluency", "n"), "evaluation (results.csv)")
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    conditions = list(dict.fromkeys(str(r["condition"]) for r in rows))
    summary = [v for v in dict.fromkeys(str(r["value"]) for r in rows) if v.lower() in ("all", "mean", "overall")]
    values = circumplex_sorted(str(r["value"]) for r in rows if str(r["value"]) not in summary) + summary
    key = {(str(r["value"]) if str(r["value"]) in summary else get_value(str(r["value"])).name, str(r["method"]),
            str(r["condition"])): r for r in rows}
    fig = make_subplots(rows=len(conditions), cols=2, shared_xaxes=True, horizontal_spacing=0.08,
                        vertical_spacing=0.12 if len(conditions) > 1 else 0.1,
                        subplot_titles=[f"{m} — {c}" if len(conditions) > 1 else m for c in conditions
                                        for m in ("control success rate", "fluency rate")])
    for ci, cond in enumerate(conditions):
        for mi, metric in enumerate(("csr", "fluency")):
            for k, method in enumerate(methods):
                ys, ups, downs, ns = [], [], [], []
                for v in values:
                    r = key.get((v, method, cond))
                    p = None if r is None else float(r[metric])
                    n = 0 if r is None else int(float(r["n"]))
                    lo, hi = wilson_interval(p, n) if p is not None and n > 0 else (p, p)
                    ys.append(p)
                    ups.append(None if p is None else hi - p)
                    downs.append(None if p is None else p - lo)
                    ns.append(n)
                fig.add_trace(go.Bar(x=values, y=ys, name=method, legendgroup=method, showlegend=ci == 0 and mi == 0,
                                     marker_color=_METHOD_COLORS[k % len(_METHOD_COLORS)], customdata=ns,
                                     hovertemplate="%{x}: %{y:.0%} (n=%{customdata})<extra>" + method + "</extra>",
                                     error_y={"type": "data", "symmetric": False, "array": ups, "arrayminus": downs,
                                              "visible": True, "thickness": 1}),
                              row=ci + 1, col=mi + 1)
            fig.update_yaxes(title_text=("CSR" if mi == 0 else "fluency") + (f" ({cond})" if len(conditions) > 1 else ""),
                             range=[0, 1.05], tickformat=".0%", row=ci + 1, col=mi + 1)
    for col in (1, 2):
        fig.update_xaxes(tickangle=-40, row=len(conditions), col=col)
        fig.update_xaxes(title_text="value", row=len(conditions), col=col)
    counts = sorted({int(float(r["n"])) for r in rows})
    n_text = f"n = {counts[0]}" if len(counts) == 1 else f"n = {counts[0]}-{counts[-1]}"
    _layout(fig, f"Control success and fluency by method<br><sup>error bars: 95% Wilson interval, {n_text} answers "
                 "per bar</sup>",
            width=1400, height=360 * len(conditions) + 200,
            barmode="group", legend={"title": {"text": "method"}})
    return fig


# ---------------------------------------------------------------------------------------------- one prompt


def plot_prompt_audit(audit: Any, p0: float | None = None, title: str | None = None) -> go.Figure:
    """P_V before and after the shift, and eps, per steered layer for one prompt.

    ``audit`` is a :class:`workbench.generation.PromptAudit` (or anything with ``.layers``, a sequence
    of ``{layer, p_before, p_after, eps}`` dicts, and ``.gate_score``/``.fired``).

    Example:
        >>> out = generate(model, [prompt], vector=vec, gate=gate, method="conva", p0=0.95)
        >>> fig = plot_prompt_audit(out.audits[0], p0=0.95, title=prompt)
    """
    recs = list(getattr(audit, "layers", ()))
    if not recs:
        raise ValueError("The audit has no steered layers (the gate stayed closed or the method does not record "
                         "them); use method='conva' or 'conva-nogate' with a prompt the gate opens on.")
    layers = [int(r["layer"]) for r in recs]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.6, 0.4],
                        subplot_titles=("probe probability P_V at the last prompt token", "shift size ε"))
    fig.add_trace(go.Scatter(x=layers, y=[float(r["p_before"]) for r in recs], name="P_V before", mode="lines+markers",
                             line={"color": "#D55E00", "dash": "dash"}, marker={"size": 8}), row=1, col=1)
    fig.add_trace(go.Scatter(x=layers, y=[float(r["p_after"]) for r in recs], name="P_V after", mode="lines+markers",
                             line={"color": "#0072B2"}, marker={"size": 8, "symbol": "diamond"}), row=1, col=1)
    fig.add_trace(go.Bar(x=layers, y=[float(r["eps"]) for r in recs], name="ε (shift along v)",
                         marker_color="#009E73"), row=2, col=1)
    if p0 is not None:
        fig.add_hline(y=p0, line={"color": "grey", "dash": "dot"}, annotation_text=f"P0 = {p0:g}",
                      annotation_position="bottom right", row=1, col=1)
    gate = getattr(audit, "gate_score", None)
    sub = [f"gate score {gate:.3f}" if gate is not None else "no gate",
           "steering fired" if getattr(audit, "fired", True) else "gate closed"]
    head = "Steering audit" + (f": {_shorten(title)}" if title else "")
    _layout(fig, f"{head}<br><sup>{'; '.join(sub)}</sup>", width=900, height=620,
            legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.15})
    fig.update_yaxes(title_text="P_V", range=[-0.02, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="ε", row=2, col=1)
    fig.update_xaxes(title_text="steered layer", dtick=1, row=2, col=1)
    return fig


def _shorten(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

