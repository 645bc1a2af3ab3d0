"""Schwartz's ten basic human values: definitions, circumplex order, groups and opposites.

Example:
    >>> from workbench.values import get_value, VALUE_NAMES
    >>> get_value("power").group
    'self-enhancement'
    >>> len(VALUE_NAMES)
    10
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = [
    "GROUPS",
    "VALUES",
    "VALUE_NAMES",
    "Value",
    "circumplex_distance",
    "get_value",
    "resolve_values",
]


@dataclass(frozen=True)
class Value:
    """One basic value.

    ``position`` is the index around the circumplex (0..9, neighbours adjacent, the ring closes);
    ``opposites`` are the values across the circle that motivationally conflict with this one.
    """

    name: str
    definition: str
    position: int
    group: str
    opposites: tuple[str, ...]


# Circumplex order (Schwartz 1992), going round the circle.
VALUES: tuple[Value, ...] = (
    Value(
        "self-direction",
        "Thinking and acting independently: choosing one's own goals, creating, exploring and "
        "deciding for oneself.",
        0, "openness to change", ("conformity", "tradition", "security"),
    ),
    Value(
        "stimulation",
        "Seeking excitement, novelty and challenge; preferring variety and daring to routine.",
        1, "openness to change", ("security", "conformity", "tradition"),
    ),
    Value(
        "hedonism",
        "Seeking pleasure and enjoyment for oneself; savouring comfort, fun and treats.",
        2, "openness to change", ("conformity", "tradition"),
    ),
    Value(
        "achievement",
        "Pursuing personal success by showing competence against accepted standards; ambition "
        "and results.",
        3, "self-enhancement", ("benevolence", "universalism"),
    ),
    Value(
        "power",
        "Seeking social status and prestige, and control or dominance over people and resources.",
        4, "self-enhancement", ("universalism", "benevolence"),
    ),
    Value(
        "security",
        "Valuing safety, stability and harmony of oneself, one's relationships and society; "
        "avoiding risk and keeping order.",
        5, "conservation", ("stimulation", "self-direction"),
    ),
    Value(
        "conformity",
        "Holding back actions that would upset others or break social expectations; obedience, "
        "politeness and self-discipline.",
        6, "conservation", ("self-direction", "stimulation", "hedonism"),
    ),
    Value(
        "tradition",
        "Respecting and keeping the customs and ideas of one's culture, family or religion.",
        7, "conservation", ("self-direction", "stimulation", "hedonism"),
    ),
    Value(
        "benevolence",
        "Caring for the welfare of the people one is close to: helpfulness, loyalty, honesty and "
        "forgiveness.",
        8, "self-transcendence", ("achievement", "power"),
    ),
    Value(
        "universalism",
        "Understanding, tolerating and protecting the welfare of all people and of nature; "
        "justice, equality and care for the environment.",
        9, "self-transcendence", ("power", "achievement"),
    ),
)

VALUE_NAMES: tuple[str, ...] = tuple(v.name for v in VALUES)

GROUPS: dict[str, tuple[str, ...]] = {
    g: tuple(v.name for v in VALUES if v.group == g)
    for g in ("openness to change", "self-enhancement", "conservation", "self-transcendence")
}

_BY_NAME = {v.name: v for v in VALUES}


def get_value(name: str) -> Value:
    """Return the :class:`Value` called ``name``; unknown names raise with the closest match."""
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key == "selfdirection":
        key = "self-direction"
    if key in _BY_NAME:
        return _BY_NAME[key]
    close = difflib.get_close_matches(key, VALUE_NAMES, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown value {name!r}.{hint} Known values: {', '.join(VALUE_NAMES)}.")


def resolve_values(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Turn ``"all"``, ``"power,security"`` or a list of names into canonical value names."""
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return VALUE_NAMES
        spec = [s for s in spec.split(",") if s.strip()]
    names = tuple(dict.fromkeys(get_value(s).name for s in spec))
    if not names:
        raise ValueError("No values given. Pass 'all' or a comma-separated list such as 'power,security'.")
    return names


def circumplex_distance(a: str, b: str) -> int:
    """Steps between two values around the circle (0..5)."""
    d = abs(get_value(a).position - get_value(b).position) % len(VALUES)
    return min(d, len(VALUES) - d)
