"""Plots of tables and single runs: the context-control audit, the evaluation (CSR, fluency), one prompt's audit.

Rows are dictionaries as ``csv.DictReader`` gives them from ``audit.csv`` and ``results.csv``; re-exported by
:mod:`workbench.plots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from workbench.analysis import circumplex_sorted
from workbench.evaluation.suite_config import is_mmlu_accuracy
from workbench.plot_style import METHOD_COLORS, layout
from workbench.stats import wilson_interval
from workbench.values import get_value

__all__ = ["plot_audit", "plot_capability", "plot_evaluation", "plot_prompt_audit"]


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
        color = colors.get(ds, METHOD_COLORS[k % len(METHOD_COLORS)])
        ys = [share.get((v, ds)) for v in values]
        mean = float(np.mean([y for y in ys if y is not None]))
        fig.add_trace(go.Bar(x=values, y=ys, name=f"{ds} (mean {mean:.0%})", marker_color=color,
                             texttemplate="%{y:.0%}", textposition="outside", textfont={"size": 11}))
        fig.add_hline(y=mean, line={"color": color, "dash": "dash", "width": 1})
    layout(fig, "Context-control audit: top-25 content words unique to one side of the pairs",
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
                                     marker_color=METHOD_COLORS[k % len(METHOD_COLORS)], customdata=ns,
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
    layout(fig, f"Control success and fluency by method<br><sup>error bars: 95% Wilson interval, {n_text} answers "
                 "per bar</sup>",
            width=1400, height=360 * len(conditions) + 200,
            barmode="group", legend={"title": {"text": "method"}})
    return fig


def plot_capability(rows: Iterable[Mapping[str, Any]]) -> go.Figure:
    """MMLU accuracy (95% Wilson intervals) and WikiText-2 perplexity by method, from ``capability.csv``.

    Rows have columns ``method,benchmark,score,n``; a panel whose benchmark is absent stays empty.

    Example:
        >>> fig = plot_capability(csv.DictReader(open("out/repro/capability.csv")))
    """
    rows = _rows(rows, ("method", "benchmark", "score", "n"), "capability (capability.csv)")
    mmlu = [r for r in rows if is_mmlu_accuracy(str(r["benchmark"]))]
    ppl = [r for r in rows if r["benchmark"] == "wikitext_ppl"]
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    colors = {m: METHOD_COLORS[k % len(METHOD_COLORS)] for k, m in enumerate(methods)}
    shots = mmlu[0]["benchmark"].removeprefix("mmlu_").replace("shot", "-shot") if mmlu else ""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, subplot_titles=[
        f"MMLU accuracy ({shots}, n = {mmlu[0]['n']})" if mmlu else "MMLU (not run)",
        "WikiText-2 perplexity" if ppl else "WikiText-2 perplexity (not run)"])
    for r in mmlu:
        p, n = float(r["score"]), int(float(r["n"]))
        lo, hi = wilson_interval(p, n)
        fig.add_trace(go.Bar(x=[r["method"]], y=[p], marker_color=colors[str(r["method"])], showlegend=False,
                             texttemplate="%{y:.3f}", textposition="inside", insidetextanchor="start",
                             error_y={"type": "data", "symmetric": False, "array": [hi - p], "arrayminus": [p - lo]}),
                      row=1, col=1)
    for r in ppl:
        fig.add_trace(go.Bar(x=[r["method"]], y=[float(r["score"])], marker_color=colors[str(r["method"])],
                             showlegend=False, texttemplate="%{y:.2f}", textposition="outside"), row=1, col=2)
    fig.update_yaxes(title_text="accuracy", range=[0, 1], tickformat=".0%", row=1, col=1)
    fig.update_yaxes(title_text="perplexity (lower is better)", rangemode="tozero", row=1, col=2)
    fig.update_xaxes(title_text="method")
    layout(fig, "General capability by method<br><sup>MMLU error bars: 95% Wilson interval</sup>", width=1000, height=480)
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
    layout(fig, f"{head}<br><sup>{'; '.join(sub)}</sup>", width=900, height=620,
            legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.15})
    fig.update_yaxes(title_text="P_V", range=[-0.02, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="ε", row=2, col=1)
    fig.update_xaxes(title_text="steered layer", dtick=1, row=2, col=1)
    return fig


def _shorten(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
