"""The ``workbench`` command: a thin layer over the library.

    workbench audit --out DIR                      context-control audit -> DIR/audit.csv
    workbench probe --values all --out DIR         probes -> DIR/accuracy.csv, DIR/vectors/<value>.*
    workbench demo --out DIR                       the main job: audit, probes, gates, a small evaluation, figures
    workbench steer --value V --prompt "..."       unsteered vs steered answers with the audit
    workbench sweep --values all --out DIR         per-value P0 and CAA coefficient -> DIR/steering_defaults.json
    workbench train-judge --touche DIR             the Touché23-trained value judge -> workbench/data/judges/

The commands live in ``probing`` (audit, probe, demo, generate-pairs), ``steering`` (steer, sweep),
``evaluation`` (evaluate, train-judge, reproduce, figures) and ``models`` (models, export-gguf); ``common`` holds
the shared argument checks and model loading; ``fields`` makes options from the library's settings dataclasses
and keyword arguments, so each default stays in its field. Building the parser imports no torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from workbench.cli import common, evaluation, models, probing, steering

__all__ = ["build_parser", "common", "evaluation", "main", "models", "probing", "steering"]


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default after its help (not for flags, required options or a None default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if hidden or action.required or action.nargs == 0 or "%(default)" in text:  # a 0 default is shown
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands share the defaults-showing help format."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` argument parser; building it imports no torch (``--help`` stays fast)."""
    from workbench import __version__

    parser = _Parser(prog="workbench", description="ConVA value probing and steering.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (models.add_models, probing.add_audit, probing.add_probe, probing.add_demo, evaluation.add_figures,
                evaluation.add_evaluate, steering.add_steer, steering.add_sweep, evaluation.add_train_judge,
                evaluation.add_reproduce, probing.add_generate_pairs, models.add_export_gguf):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``workbench`` command line; a user error prints ``error: ...`` and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from workbench.chat import ChatError
        from workbench.evaluation.judges import JudgeError
        from workbench.pairgen import PairGenError

        if not isinstance(err, ChatError | JudgeError | PairGenError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
