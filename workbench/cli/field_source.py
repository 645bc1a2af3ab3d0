"""Read a settings dataclass's fields, or a function's keyword arguments, from the source without importing it.

``workbench --help`` must not import torch, yet the settings it shows live in modules that do
(:class:`~workbench.evaluation.suite.SuiteConfig`, :class:`~workbench.steering.SteeringSpec`). So a
source named ``"module:Name"`` is read with :mod:`ast`: the field names, their annotations as
written, and their defaults. A default is evaluated from the source too: literals, tuples,
subscripts, ``Path(...)`` and names defined in the module or imported from another workbench module
(followed the same way). Only a name that cannot be read so (``SUITE_METHODS = tuple(...)``) is
imported from where it was defined, which must then be a light module; the help test checks that.

Example:
    >>> [(s.name, s.default) for s in read_source("workbench.reproduce:ReproConfig")][4]
    ('mmlu_n', 300)
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import workbench

__all__ = ["NotStatic", "Setting", "read_source"]

_CALLS: dict[str, Callable[..., Any]] = {"Path": Path, "tuple": tuple, "frozenset": frozenset}


class NotStatic(ValueError):
    """A default that cannot be read from the source without running it."""


@dataclass(frozen=True)
class Setting:
    """One field (or keyword argument): its name, annotation as written, and a reader of its default.

    The default is read only when asked for, so an unused field with an unreadable default costs nothing.
    """

    name: str
    annotation: str
    read_default: Callable[[], Any]

    @property
    def default(self) -> Any:
        """The default value; :data:`dataclasses.MISSING` for a required setting."""
        return self.read_default()


def _module_file(module: str) -> Path | None:
    """The source file of a workbench module (a ``.py`` file or a package's ``__init__.py``); None outside workbench."""
    top, *rest = module.split(".")
    if top != "workbench":
        return None
    base = Path(workbench.__file__).parent.joinpath(*rest)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise ValueError(f"No source file for module {module!r} (looked for {base}.py and {base}/__init__.py).")


@lru_cache(maxsize=64)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The module a ``from ... import`` in ``module`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    path = _module_file(module)
    package = module if path is not None and path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _statement(module: str, name: str) -> ast.stmt | tuple[str, str]:
    """The top-level statement of ``module`` that defines ``name``, or ``(source module, its name)`` for an import."""
    path = _module_file(module)
    if path is None:
        return module, name
    for stmt in _tree(path).body:
        if isinstance(stmt, ast.ClassDef | ast.FunctionDef) and stmt.name == name:
            return stmt
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return stmt
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return stmt
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    return _absolute(module, stmt), alias.name
    raise ValueError(f"{module} defines no {name!r} at its top level.")


def _value(module: str, name: str) -> Any:
    """The value of the top-level ``name`` in ``module``: read from the source where it can be, else imported."""
    found = _statement(module, name)
    if isinstance(found, tuple):
        source, original = found
        if _module_file(source) is not None and source != module:
            try:
                return _value(source, original)
            except NotStatic:
                pass
        return getattr(importlib.import_module(source), original)
    if isinstance(found, ast.Assign | ast.AnnAssign) and found.value is not None:
        return _evaluate(found.value, module)
    raise NotStatic(f"{module}.{name} is not a plain assignment")


def _evaluate(node: ast.expr, module: str) -> Any:
    """A default expression of ``module``: literals, tuples, subscripts, ``Path(...)`` and names."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    if isinstance(node, ast.Name):
        return _value(module, node.id)
    if isinstance(node, ast.Subscript):
        return _evaluate(node.value, module)[_evaluate(node.slice, module)]
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(e, module) for e in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS and not node.keywords:
        return _CALLS[node.func.id](*(_evaluate(a, module) for a in node.args))
    raise NotStatic(f"{ast.unparse(node)} in {module}")


def _field_default(node: ast.expr | None, module: str) -> Callable[[], Any]:
    """A reader of a field's default: ``= value``, ``= field(default=...)`` or ``field(default_factory=...)``."""
    if node is None:
        return lambda: dataclasses.MISSING
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("field", "dataclasses.field"):
        given = {k.arg: k.value for k in node.keywords}
        if "default" in given:
            return lambda: _evaluate(given["default"], module)
        if "default_factory" in given:
            return lambda: _evaluate(given["default_factory"], module)()
        return lambda: dataclasses.MISSING
    return lambda: _evaluate(node, module)


def _no_init(node: ast.expr | None) -> bool:
    """``field(init=False)``: not a constructor argument."""
    return isinstance(node, ast.Call) and any(k.arg == "init" and ast.literal_eval(k.value) is False
                                              for k in node.keywords)


def _class_settings(stmt: ast.ClassDef, module: str) -> list[Setting]:
    out = []
    for s in stmt.body:
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and not _no_init(s.value):
            annotation = ast.unparse(s.annotation)
            if not annotation.startswith(("ClassVar", "typing.ClassVar")):
                out.append(Setting(s.target.id, annotation, _field_default(s.value, module)))
    return out


def _function_settings(stmt: ast.FunctionDef, module: str) -> list[Setting]:
    args = stmt.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    return [Setting(a.arg, ast.unparse(a.annotation) if a.annotation else "", _field_default(d, module))
            for a, d in pairs]


def read_source(ref: str) -> tuple[Setting, ...]:
    """The settings of ``"module:Name"`` (a dataclass or a function), read from the source; imports follow."""
    module, sep, name = ref.partition(":")
    if not sep or not name:
        raise ValueError(f"A settings source is 'module:Name', got {ref!r}.")
    found = _statement(module, name)
    while isinstance(found, tuple):  # re-exported: read it where it is defined
        module, name = found
        if _module_file(module) is None:
            raise ValueError(f"{ref} comes from {module}, outside workbench; pass the object itself.")
        found = _statement(module, name)
    if isinstance(found, ast.ClassDef):
        return tuple(_class_settings(found, module))
    if isinstance(found, ast.FunctionDef):
        return tuple(_function_settings(found, module))
    raise ValueError(f"{ref} is neither a class nor a function.")
