"""Shared look of the plots: Okabe-Ito colours per higher-order group, dashes and markers per value, layout."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from workbench.values import GROUPS, get_value, is_known_value

__all__ = ["FONT", "GROUP_COLORS", "METHOD_COLORS", "OWN_COLOR", "OWN_GROUP", "group_of", "layout", "style"]

# Okabe-Ito colours (colour-blind safe), one per higher-order group; members differ by dash and marker.
GROUP_COLORS: dict[str, str] = {
    "openness to change": "#E69F00",
    "self-enhancement": "#CC79A7",
    "conservation": "#0072B2",
    "self-transcendence": "#009E73",
}
_DASHES = ("solid", "dash", "dot")
_SYMBOLS = ("circle", "square", "diamond")
METHOD_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
FONT = {"family": "Arial, Helvetica, sans-serif", "size": 14}


# concepts of your own (not among the 10 values): one grey group after the circumplex
OWN_GROUP, OWN_COLOR = "own concepts", "#555555"


def group_of(value: str) -> str:
    """The higher-order group of ``value`` (``OWN_GROUP`` for a concept of your own)."""
    return get_value(value).group if is_known_value(value) else OWN_GROUP


def style(value: str) -> dict[str, Any]:
    """Colour (group), dash and marker symbol (position inside the group) of one value."""
    if not is_known_value(value):
        return {"color": OWN_COLOR, "dash": "dashdot", "symbol": "x"}
    v = get_value(value)
    k = GROUPS[v.group].index(v.name)
    return {"color": GROUP_COLORS[v.group], "dash": _DASHES[k % 3], "symbol": _SYMBOLS[k % 3]}


def layout(fig: go.Figure, title: str, width: int = 900, height: int = 520, **kwargs: Any) -> go.Figure:
    """Centre the title and apply the shared template, font and size."""
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"}, template="plotly_white", font=FONT,
                      width=width, height=height, **kwargs)
    return fig
