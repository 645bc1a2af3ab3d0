"""Schwartz's ten basic human values: definitions, circumplex order, groups and opposites.

Example:
    >>> from workbench.values import get_value, VALUE_NAMES
    >>> get_value("power").group
    'self-enhancement'
    >>> len(VALUE_NAMES)
    10
    >>> value_name("Self direction"), value_name("honesty")   # a concept of your own keeps its name
    ('self-direction', 'honesty')
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

__all__ = [
    "GROUPS",
    "VALUES",
    "VALUE_NAMES",
    "Value",
    "circumplex_distance",
    "get_value",
    "is_known_value",
    "resolve_values",
    "value_name",
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


def _key(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    return "self-direction" if key == "selfdirection" else key


def _unknown(name: str, key: str, cutoff: float = 0.6) -> ValueError:
    close = difflib.get_close_matches(key, VALUE_NAMES, n=1, cutoff=cutoff)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ValueError(f"Unknown value {name!r}.{hint} Known values: {', '.join(VALUE_NAMES)}.")


def get_value(name: str) -> Value:
    """Return the :class:`Value` called ``name``; unknown names raise with the closest match."""
    key = _key(name)
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise _unknown(name, key)


# A concept of your own: its name becomes a file stem (``vectors/<name>.safetensors``), so it is kept short and plain.
_CUSTOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Names this close to one of the 10 values (difflib ratio) are taken for typos, not for new concepts.
TYPO_CUTOFF = 0.8


def is_known_value(name: str) -> bool:
    """True for one of the 10 shipped values (any spelling :func:`get_value` accepts)."""
    return isinstance(name, str) and _key(name) in _BY_NAME


def value_name(name: str) -> str:
    """The canonical name of a shipped value, or of a concept of your own (e.g. ``"honesty"``).

    Case, spaces and underscores are folded (``"Self direction"`` -> ``"self-direction"``). A name that
    is not one of the 10 values is accepted as a custom concept if it is 1-64 characters of ``a-z``,
    ``0-9`` and ``-``, and is not a likely typo of a known value (``"powr"`` raises "Did you mean 'power'?").

    Example:
        >>> value_name("honesty")
        'honesty'
    """
    if not isinstance(name, str):
        raise ValueError(f"A value name must be a string, got {type(name).__name__}.")
    key = _key(name)
    if key in _BY_NAME:
        return key
    if difflib.get_close_matches(key, VALUE_NAMES, n=1, cutoff=TYPO_CUTOFF):
        raise _unknown(name, key, TYPO_CUTOFF)
    if not _CUSTOM_NAME.fullmatch(key):
        shown = name if len(name) <= 40 else name[:37] + "..."
        raise ValueError(f"Value name {shown!r} is not one of the 10 values ({', '.join(VALUE_NAMES)}), and a concept "
                         "of your own needs a name of 1-64 characters a-z, 0-9 and '-' (e.g. 'honesty').")
    return key


def resolve_values(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Turn ``"all"``, ``"power,security"`` or a list of names into canonical value names.

    Names of your own concepts pass through :func:`value_name` (``"power,honesty"``); typos of known
    values raise with the closest match.
    """
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return VALUE_NAMES
        spec = [s for s in spec.split(",") if s.strip()]
    names = tuple(dict.fromkeys(value_name(s) for s in spec))
    if not names:
        raise ValueError("No values given. Pass 'all' or a comma-separated list such as 'power,security'.")
    return names


def circumplex_distance(a: str, b: str) -> int:
    """Steps between two values around the circle (0..5)."""
    d = abs(get_value(a).position - get_value(b).position) % len(VALUES)
    return min(d, len(VALUES) - d)
