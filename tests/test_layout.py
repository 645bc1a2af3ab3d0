"""The package's shape: a layered import graph, modules of at most ~300 lines, no import of the tests.

Every module under ``workbench/`` is parsed with ``ast`` (nothing is imported). Every import counts,
including those inside functions (the lazy imports that keep ``workbench --help`` fast), except those
under ``if TYPE_CHECKING:``, which never run.

The layers, bottom to top (a module may import its own layer and the layers below, never above):

0. base: the package root (``__version__`` and lazy exports, no imports at run time), constants, the
   method registry, values, file and table helpers, statistics, progress, chat client and template,
   the least-distance solver. No model, no torch at import.
1. model: loading (``model``), the embedded-model registry, the GGUF conversion cache and the twin.
2. data: contrastive pairs, safe text files, the pair audit, prompts, pair generation, read
   positions, the shipped steering defaults.
3. probing: activations, the artefact file format, value vectors, probes, their analysis, the GGUF
   control-vector export.
4. steering: the steering package (spec, closed form, shifts, hook backends), gates, generation,
   profiles and multi-value steering, subspaces, the fast path.
5. evaluation: the evaluation package (judges, metrics, capability, suite, server) and the sweep.
6. presentation: plots, figures, the reproduction report, the notebook widgets.
7. apps: the demo, the reproduction run and the command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
TESTS = Path(__file__).resolve().parent

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("workbench", "workbench.constants", "workbench.methods", "workbench.values", "workbench.io",
              "workbench.tables", "workbench.stats", "workbench.progress", "workbench.chat",
              "workbench.chat_template", "workbench.least_distance")),
    ("model", ("workbench.model", "workbench.registry", "workbench.conversion", "workbench.twin")),
    ("data", ("workbench.datasets", "workbench.textfiles", "workbench.pair_audit", "workbench.prompts",
              "workbench.pairgen", "workbench.pair_requests", "workbench.readout", "workbench.defaults")),
    ("probing", ("workbench.activations", "workbench.artefacts", "workbench.vectors", "workbench.probes",
                 "workbench.analysis", "workbench.export")),
    ("steering", ("workbench.steering", "workbench.gate", "workbench.generation", "workbench.profiles",
                  "workbench.multi", "workbench.subspace", "workbench.fastpath")),
    ("evaluation", ("workbench.evaluation", "workbench.sweep")),
    ("presentation", ("workbench.plot_style", "workbench.plots", "workbench.result_plots", "workbench.figures",
                      "workbench.report", "workbench.widgets")),
    ("apps", ("workbench.demo", "workbench.reproduce", "workbench.cli")),
)

MAX_LINES = 300
# Modules allowed over MAX_LINES, each with the reason a split would not pay.
ACCEPTED_LONG: dict[str, str] = {}


def module_name(path: Path) -> str:
    """``workbench/cli/common.py`` -> ``workbench.cli.common``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index of the layer of ``module``: its longest listed prefix decides (a package covers its modules)."""
    best, index = "", -1
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, index = name, i
    if index < 0:
        raise KeyError(module)
    return index


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (they never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def imports(path: Path) -> list[tuple[int, str, int]]:
    """``(line, imported name, relative level)`` of every import in ``path`` that runs.

    ``from a import b`` yields ``a.b`` when that is a module of the package (a submodule), else ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_nodes(tree)
    out: list[tuple[int, str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((node.lineno, sub if sub in MODULES else base, node.level))
    return out


def test_every_module_has_a_layer():
    unplaced = []
    for name in MODULES:
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"place these modules in a layer of LAYERS: {unplaced}"


def test_no_relative_imports():
    relative = [f"{MODULES[m].name}:{line}" for m in MODULES for line, _, level in imports(MODULES[m]) if level]
    assert not relative, f"use absolute imports (the layer check reads them): {relative}"


def upward_imports(name: str, path: Path) -> list[str]:
    """The imports of module ``name`` (source ``path``) that reach a higher layer, as readable lines."""
    own = layer_of(name)
    found = []
    for line, target, _ in imports(path):
        if target.split(".")[0] != "workbench":
            continue
        while target not in MODULES and "." in target:  # `import workbench.x.attr`: the module part
            target = target.rsplit(".", 1)[0]
        to = layer_of(target)
        if to > own:
            found.append(f"{path.name}:{line} ({LAYERS[own][0]}) imports {target} ({LAYERS[to][0]})")
    return found


def test_no_module_imports_a_higher_layer():
    upward = [line for name, path in MODULES.items() for line in upward_imports(name, path)]
    assert not upward, "imports upward in the layering:\n" + "\n".join(upward)


def test_the_layer_check_finds_an_upward_import(tmp_path):
    path = tmp_path / "values.py"
    path.write_text("def f():\n    from workbench.cli import main\n    from workbench import __version__\n",
                    encoding="utf-8")
    assert upward_imports("workbench.values", path) == ["values.py:2 (base) imports workbench.cli (apps)"]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_length(name):
    n = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    if name in ACCEPTED_LONG:
        assert n > MAX_LINES, f"{name} is {n} lines now: drop it from ACCEPTED_LONG"
        return
    assert n <= MAX_LINES, f"{name} is {n} lines (limit {MAX_LINES}): split it along a seam, or accept it with a reason"


def test_the_package_never_imports_the_tests():
    local = {"tests", "conftest"} | {p.stem for p in TESTS.glob("*.py")}
    found = [f"{MODULES[m].relative_to(PACKAGE.parent)}:{line} imports {target}"
             for m in MODULES for line, target, _ in imports(MODULES[m]) if target.split(".")[0] in local]
    assert not found, found


def test_the_layer_check_sees_lazy_and_skips_type_checking_imports(tmp_path):
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workbench.cli import main\n"
            "def f():\n    from workbench.gate import Gate\n    from workbench import cli\n")
    path = tmp_path / "probe.py"
    path.write_text(code, encoding="utf-8")
    assert [t for _, t, _ in imports(path)] == ["typing", "workbench.gate", "workbench.cli"]
