"""The steering methods, one record each: what a method needs and which shift it applies.

Import-light (no torch), so :mod:`workbench.constants` and ``workbench --help`` can list the names.
Code that dispatches on a method reads its :class:`Method` record instead of comparing strings.

Example:
    >>> get_method("conva-nogate").shift, get_method("conva-nogate").uses_gate
    ('conva', False)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GENERATION_METHODS", "METHODS", "SHIFTS", "SUITE_METHODS", "Method", "get_method"]

SHIFTS = ("conva", "caa")  # the shift operators a hook can apply (workbench.steering.shifts)


@dataclass(frozen=True)
class Method:
    """One steering method.

    ``shift`` is the hook arithmetic (``"conva"`` closed form, ``"caa"`` fixed coefficient, ``None``:
    no hooks); ``uses_gate``: steering only where the gate opens; ``system_prompt``: the ICA prompt;
    ``dataset``: the pairs the vector comes from; ``generation``: :func:`workbench.generation.generate`
    runs it directly (the suite-only ``conva-naive`` is ``generates_as`` with a naive vector);
    ``ungated``: the same method with the gate ignored, whose answers an open gate reproduces.
    """

    name: str
    shift: str | None = None
    uses_gate: bool = False
    system_prompt: bool = False
    dataset: str = "controlled"
    generation: bool = True
    generates_as: str | None = None
    ungated: str | None = None
    help: str = ""

    @property
    def needs_vector(self) -> bool:
        """A steering shift (or the ICA prompt, which names the vector's value) needs a vector."""
        return self.name != "none"

    @property
    def base(self) -> Method:
        """The method :func:`workbench.generation.generate` runs for this one."""
        return METHODS[self.generates_as] if self.generates_as else self


_ALL = (
    Method("none", help="the plain model"),
    Method("prompt", system_prompt=True, help="ICA: 'You have a high level of V. <definition>' as system prompt"),
    Method("caa", shift="caa", help="coef * mean difference added at every position"),
    Method("conva", shift="conva", uses_gate=True, ungated="conva-nogate", help="closed-form minimal shift behind the gate"),
    Method("conva-nogate", shift="conva", help="closed-form minimal shift, gate ignored"),
    Method("conva-naive", shift="conva", uses_gate=True, dataset="naive", generation=False, generates_as="conva",
           help="ConVA with a vector probed on the non-controlled pairs"),
)
METHODS: dict[str, Method] = {m.name: m for m in _ALL}
GENERATION_METHODS = tuple(m.name for m in _ALL if m.generation)
SUITE_METHODS = tuple(m.name for m in _ALL)


def get_method(name: str | Method, choices: tuple[str, ...] = GENERATION_METHODS) -> Method:
    """The :class:`Method` called ``name``; an unknown name (or one not in ``choices``) is a clear error.

    Example:
        >>> get_method("caa").shift
        'caa'
    """
    if isinstance(name, Method):
        name = name.name
    if name not in METHODS or name not in choices:
        raise ValueError(f"Unknown method {name!r}; use one of {choices}.")
    return METHODS[name]
