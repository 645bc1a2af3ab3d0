"""Options made from settings fields: defaults follow the dataclass, types convert, the CLI matches the library."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workbench.cli import build_parser, field_source
from workbench.cli.fields import add_fields, field_values, from_args, read_settings


@dataclass(frozen=True)
class Tiny:
    name: str
    n: int = 3
    rate: float = 0.5
    out: Path = Path("out/tiny")
    data: Path | None = None
    items: tuple[str, ...] = ("a", "b")
    layers: tuple[int, ...] | None = None
    verbose: bool = False
    progress: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)


HELP = {f.name: f"the {f.name}" for f in dataclasses.fields(Tiny)}


def _parser(source=Tiny, helps=HELP, **kwargs) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_fields(p, source, helps, **kwargs)
    return p


def test_defaults_and_types_come_from_the_fields():
    args = _parser().parse_args(["--name", "x"])
    assert (args.n, args.rate, args.out, args.data, args.items, args.layers) == (3, 0.5, Path("out/tiny"), None,
                                                                                ("a", "b"), None)
    assert args.verbose is False and args.progress is True and args.tags == ()
    args = _parser().parse_args(["--name", "x", "--n", "7", "--rate", "0.25", "--out", "o", "--data", "d",
                                 "--items", " c , d ", "--layers", "3,1", "--verbose", "--no-progress"])
    assert (args.n, args.rate, args.out, args.data, args.items, args.layers) == (7, 0.25, Path("o"), Path("d"),
                                                                                ("c", "d"), (3, 1))
    assert args.verbose is True and args.progress is False
    assert _parser().parse_args(["--name", "x", "--data", ""]).data is None  # an empty optional path: none


def test_a_changed_default_shows_up_in_the_parser():
    Changed = dataclasses.make_dataclass("Tiny", [("n", int, field(default=11))])
    assert _parser(Changed, helps={"n": "n"}).parse_args([]).n == 11
    assert _parser(Changed, helps={"n": "n"}).get_default("n") == 11


def test_round_trip_namespace_to_dataclass():
    args = _parser().parse_args(["--name", "x", "--items", "e", "--layers", "2"])
    assert from_args(Tiny, args) == Tiny(name="x", items=("e",), layers=(2,))
    assert from_args(Tiny, _parser().parse_args(["--name", "x"])) == Tiny(name="x")
    only = _parser(only=("n", "rate")).parse_args(["--n", "5"])
    assert field_values(only, Tiny) == {"n": 5, "rate": 0.5}
    assert from_args(Tiny, only, name="given") == Tiny(name="given", n=5)  # the rest set by the command


def test_selection_overrides_and_flag_names():
    p = _parser(only=("n", "items", "name"), exclude=("name",), overrides={
        "n": {"flag": "--count", "choices": [3, 4]}, "items": {"help": "own help"}})
    assert p.parse_args(["--count", "4"]).n == 4
    assert not hasattr(p.parse_args([]), "rate")
    assert "own help" in p.format_help() and "--n " not in p.format_help()


@pytest.mark.parametrize(("argv", "message"), [
    (["--n", "x"], "argument --n: invalid int value: 'x'"),
    (["--rate", "fast"], "argument --rate: invalid float value: 'fast'"),
    (["--items", "a,,b"], "argument --items: 'a,,b' has an empty item; give comma-separated names such as a,b"),
    (["--layers", "1,two"], "argument --layers: 'two' in '1,two' is not a whole number"),
    (["--out", ""], "argument --out: the path is empty"),
    ([], "the following arguments are required: --name"),
])
def test_bad_values_are_clear_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv if not argv or argv[0] == "--name" else ["--name", "x", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_mistakes_in_the_command_are_refused_when_the_parser_is_built():
    with pytest.raises(ValueError, match="Tiny has no field nn \\(given in only\\)"):
        _parser(only=("nn",))
    with pytest.raises(ValueError, match="no field typo \\(given in helps\\)"):
        _parser(Tiny, helps={"typo": "x"})
    with pytest.raises(ValueError, match=r"No help text for the option made from Tiny\.rate"):
        _parser(Tiny, helps={"n": "n"}, only=("n", "rate"))
    Odd = dataclasses.make_dataclass("Odd", [("when", "dict[str, int]", field(default=None))])
    with pytest.raises(TypeError, match="Cannot make an option from when: dict"):
        _parser(Odd, helps={"when": "w"})
    with pytest.raises(LookupError, match="No options were made from Tiny"):
        from_args(Tiny, argparse.Namespace())


def test_source_files_are_read_without_importing_and_follow_reexports(tmp_path, monkeypatch):
    files = {"workbench.fake_cfg": tmp_path / "fake_cfg.py", "workbench.fake_api": tmp_path / "fake_api.py"}
    files["workbench.fake_cfg"].write_text(
        "import torch\nfrom dataclasses import dataclass, field\nfrom pathlib import Path\n"
        "from workbench.constants import MODES\nLIMIT = 4\n"
        "@dataclass(frozen=True)\nclass Cfg:\n    n: int = LIMIT\n    mode: str = MODES[-1]\n"
        "    out: Path = Path('o')\n    size: int = field(default=9, repr=False)\n    hidden: int = field(init=False)\n"
        "def run(model, n_prompts: int = 12, *, judge: str = 'touche'): ...\n")
    files["workbench.fake_api"].write_text("from workbench.fake_cfg import Cfg, run\n")
    monkeypatch.setattr(field_source, "_module_file", lambda module: files.get(module, None))
    settings = {s.name: s.default for s in read_settings("workbench.fake_api:Cfg")}
    assert settings == {"n": 4, "mode": "per-step", "out": Path("o"), "size": 9}
    assert [(s.name, s.annotation, s.default) for s in read_settings("workbench.fake_cfg:run")][1:] == [
        ("n_prompts", "int", 12), ("judge", "str", "touche")]
    p = argparse.ArgumentParser()
    add_fields(p, "workbench.fake_api:Cfg", {"n": "n"}, only=("n",))
    assert p.parse_args([]).n == 4
    field_source._tree.cache_clear()
    files["workbench.fake_cfg"].write_text(files["workbench.fake_cfg"].read_text().replace("LIMIT = 4", "LIMIT = 6"))
    assert read_settings("workbench.fake_cfg:Cfg")[0].default == 6  # the default follows the source
    field_source._tree.cache_clear()
    with pytest.raises(ValueError, match="module:Name"):
        read_settings("workbench.fake_cfg")


SOURCES = ("workbench.evaluation.suite:SuiteConfig", "workbench.steering.spec:SteeringSpec",
           "workbench.reproduce:ReproConfig", "workbench.sweep:sweep_defaults", "workbench.generation:generate")


@pytest.mark.parametrize("ref", SOURCES)
def test_reading_the_source_agrees_with_the_imported_object(ref):
    import importlib

    module, _, name = ref.partition(":")
    live = read_settings(getattr(importlib.import_module(module), name))
    assert [(s.name, s.annotation, s.default) for s in read_settings(ref)] == [
        (s.name, s.annotation, s.default) for s in live]


def _sub(argv):
    return build_parser().parse_args(argv)


def test_the_commands_defaults_are_the_librarys():
    from workbench.evaluation.suite import SuiteConfig
    from workbench.generation import generate
    from workbench.reproduce import ReproConfig
    from workbench.steering import SteeringSpec
    from workbench.sweep import sweep_defaults

    assert from_args(SuiteConfig, _sub(["evaluate", "--out", "o"]), values=("power",)) == SuiteConfig(
        values=("power",), out=Path("o"))
    assert from_args(ReproConfig, _sub(["reproduce"]), model_name="m") == ReproConfig(model_name="m")
    steer = _sub(["steer", "--value", "power", "--prompt", "hi"])
    assert from_args(SteeringSpec, steer, layers=None) == SteeringSpec()
    assert steer.max_new_tokens == inspect.signature(generate).parameters["max_new_tokens"].default
    signature = inspect.signature(sweep_defaults).parameters
    assert field_values(_sub(["sweep", "--out", "o"]), "workbench.sweep:sweep_defaults") == {
        name: signature[name].default for name in ("n_prompts", "max_new_tokens", "min_fluency", "judge")}


def test_options_keep_their_names_and_parse_as_before():
    args = _sub(["evaluate", "--out", "o", "--methods", "none,conva", "--mmlu-n", "20", "--mmlu", "m", "--mode",
                 "per-step", "--p0", "0.9"])
    assert (args.methods, args.mmlu_n, args.mmlu, args.mode, args.p0) == (("none", "conva"), 20, Path("m"),
                                                                          "per-step", 0.9)
    args = _sub(["sweep", "--out", "o", "--n", "3", "--max-new-tokens", "5", "--judge", "pairs"])
    assert (args.n_prompts, args.max_new_tokens, args.judge) == (3, 5, "pairs")
    assert _sub(["steer", "--value", "v", "--layers", "1,2", "--allow-special-tokens"]).layers == "1,2"
    assert _sub(["reproduce", "--sweep-prompts", "4", "--out", "r"]).out == Path("r")


def test_help_shows_generated_defaults_but_not_for_flags():
    from workbench.cli import _Parser

    sub = build_parser()._subparsers._group_actions[0].choices
    evaluate, reproduce = (" ".join(sub[name].format_help().split()) for name in ("evaluate", "reproduce"))
    assert "sampled from the MMLU test files (default: 1000)" in evaluate
    assert "seeded MMLU test questions (default: 300)" in reproduce
    assert "seed of the prompt sampling and generation (default: 0)" in evaluate  # a zero default is shown too
    p = _Parser(prog="t")
    add_fields(p, Tiny, HELP, only=("n", "verbose", "progress"))
    text = " ".join(p.format_help().split())
    assert "the n (default: 3)" in text and "--no-progress the progress" in text and "(default: True)" not in text
