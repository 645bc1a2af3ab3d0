"""Command-line options made from a settings dataclass's fields, so each default lives only in the library.

:func:`add_fields` turns fields into options: ``mmlu_n: int = 1000`` becomes ``--mmlu-n`` with
``type=int`` and default 1000. The type follows the annotation (``int``, ``float``, ``str``, ``Path``,
``bool``, ``tuple[str, ...]`` and ``tuple[int, ...]`` as comma-separated text, each optionally
``| None``); a ``bool`` is a flag: ``--x`` where it defaults to False, ``--no-x`` where it defaults
to True. The command gives the help texts and, where it needs them, per-option ``overrides`` (argparse
keywords such as ``choices`` or ``required``, and ``flag`` for another option name).
:func:`from_args` builds the dataclass back from the parsed options.

The source is the dataclass (or a function, for its keyword arguments) or, where importing it would
pull in torch, its name ``"module:Name"``, read from the source file (:mod:`.field_source`).

Example:
    >>> add_fields(p, ReproConfig, {"mmlu_n": "seeded MMLU test questions"}, only=("mmlu_n",))
    >>> from_args(ReproConfig, p.parse_args(["--mmlu-n", "50"]), model_name="m").mmlu_n
    50
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import types
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from workbench.cli.field_source import Setting, read_source

__all__ = ["add_fields", "field_values", "from_args", "read_settings"]

_MADE = "_workbench_fields"  # parser default: {source name: field names made into options}


def _source_name(source: Any) -> str:
    return source.partition(":")[2] if isinstance(source, str) else source.__name__


def read_settings(source: Any) -> tuple[Setting, ...]:
    """The settings of a dataclass, a function's parameters, or ``"module:Name"`` read without importing it."""
    if isinstance(source, str):
        return read_source(source)
    if dataclasses.is_dataclass(source):
        out = []
        for f in dataclasses.fields(source):
            if f.init:
                read = f.default_factory if f.default_factory is not dataclasses.MISSING else (lambda d=f.default: d)
                out.append(Setting(f.name, _annotation(f.type), read))
        return tuple(out)
    if callable(source):
        params = [p for p in inspect.signature(source).parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return tuple(Setting(p.name, _annotation(p.annotation), lambda d=p.default:
                             dataclasses.MISSING if d is inspect.Parameter.empty else d) for p in params)
    raise TypeError(f"Expected a dataclass, a function or 'module:Name', got {source!r}.")


def _annotation(annotation: Any) -> str:
    """An annotation as written: strings stay, types become their name (``int``, ``Path``)."""
    if isinstance(annotation, str):
        return annotation
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, type) and not isinstance(annotation, types.GenericAlias):  # tuple[int, ...] stays whole
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _parse_kind(annotation: str) -> tuple[str, bool]:
    """``"Path | None"`` -> ``("Path", True)``; the base annotation and whether None is allowed."""
    node = ast.parse(annotation or "None", mode="eval").body
    parts: list[ast.expr] = []
    stack = [node]
    while stack:
        part = stack.pop()
        if isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr):
            stack += [part.right, part.left]
        elif isinstance(part, ast.Subscript) and ast.unparse(part.value) in ("Optional", "typing.Optional"):
            parts += [part.slice, ast.Constant(None)]
        else:
            parts.append(part)
    kept = [p for p in parts if not (isinstance(p, ast.Constant) and p.value is None)]
    return (ast.unparse(kept[0]) if len(kept) == 1 else annotation), len(kept) < len(parts)


def _items(of: Callable[[str], Any], item: str) -> Callable[[str], tuple[Any, ...]]:
    """A converter of comma-separated text to a tuple; an empty or bad item is a clear argparse error."""
    def convert(text: str) -> tuple[Any, ...]:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item; give comma-separated {item}s such as "
                                             f"{'a,b' if of is str else '1,2'}")
        bad = [p for p in parts if not _converts(of, p)]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} in {text!r} is not a {item}")
        return tuple(of(p) for p in parts)

    return convert


def _converts(of: Callable[[str], Any], text: str) -> bool:
    try:
        of(text)
    except ValueError:
        return False
    return True


def _path(optional: bool) -> Callable[[str], Path | None]:
    def path(text: str) -> Path | None:
        if not text:
            if optional:
                return None  # `--mmlu ""` means no MMLU, as leaving it out does
            raise argparse.ArgumentTypeError("the path is empty")
        return Path(text)

    return path


_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int, "float": float, "str": str,
    "tuple[str, ...]": _items(str, "name"), "tuple[int, ...]": _items(int, "whole number"),
    "tuple[float, ...]": _items(float, "number"),
}


def _option(setting: Setting, help_text: str, override: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The flag(s) and ``add_argument`` keywords for one setting."""
    base, optional = _parse_kind(setting.annotation)
    default = setting.default
    flag = "--" + setting.name.replace("_", "-")
    kwargs: dict[str, Any] = {"dest": setting.name, "help": help_text}
    if base == "bool" and "type" not in override and "action" not in override:
        if default is True:
            flag, kwargs["action"] = "--no-" + setting.name.replace("_", "-"), "store_false"
        else:
            kwargs["action"] = "store_true"
        kwargs["default"] = default is True
    else:
        if "type" not in override and "action" not in override:
            converter = _path(optional) if base == "Path" else _TYPES.get(base)
            if converter is None:
                raise TypeError(f"Cannot make an option from {setting.name}: {setting.annotation}. Give it a 'type' "
                                "override or leave the field out.")
            kwargs["type"] = converter
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        elif isinstance(default, tuple | list) and default:
            kwargs["default"] = ",".join(map(str, default))  # argparse converts a text default with the type
        else:
            kwargs["default"] = str(default) if isinstance(default, Path) else default
    flags = override.get("flag", flag)
    kwargs.update({k: v for k, v in override.items() if k != "flag"})
    return [flags] if isinstance(flags, str) else list(flags), kwargs


def add_fields(parser: argparse.ArgumentParser, source: Any, helps: Mapping[str, str], *,
               only: Collection[str] | None = None, exclude: Collection[str] = (),
               overrides: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, ...]:
    """Add an option for each setting of ``source`` (``only`` these, less ``exclude``); returns their names.

    ``helps`` maps each field name to its help text (an ``overrides[name]["help"]`` also counts);
    ``overrides[name]`` holds argparse keywords for that option, and ``flag`` for another option name.
    Naming a field that ``source`` lacks is an error, so a renamed field cannot go unnoticed.
    """
    settings = {s.name: s for s in read_settings(source)}
    overrides = overrides or {}
    for what, names in (("only", only or ()), ("exclude", exclude), ("overrides", overrides), ("helps", helps)):
        unknown = sorted(set(names) - set(settings))
        if unknown:
            raise ValueError(f"{_source_name(source)} has no field {', '.join(unknown)} (given in {what}); "
                             f"its fields: {', '.join(settings)}.")
    chosen = [n for n in (only if only is not None else settings) if n not in set(exclude)]
    for name in chosen:
        override = overrides.get(name, {})
        help_text = override.get("help", helps.get(name))
        if not help_text:
            raise ValueError(f"No help text for the option made from {_source_name(source)}.{name}.")
        flags, kwargs = _option(settings[name], help_text, override)
        parser.add_argument(*flags, **kwargs)
    made = dict(parser.get_default(_MADE) or {})
    made[_source_name(source)] = (*made.get(_source_name(source), ()), *chosen)
    parser.set_defaults(**{_MADE: made})
    return tuple(chosen)


def field_values(args: argparse.Namespace, source: Any) -> dict[str, Any]:
    """The parsed values of the options :func:`add_fields` made from ``source``, by field name."""
    made = getattr(args, _MADE, {}) or {}
    name = _source_name(source)
    if name not in made:
        raise LookupError(f"No options were made from {name} for this command.")
    return {field: getattr(args, field) for field in made[name]}


def from_args(cls: type, args: argparse.Namespace, **changes: Any) -> Any:
    """``cls`` built from the options made from its fields, with ``changes`` for the fields set otherwise."""
    return cls(**{**field_values(args, cls), **changes})
