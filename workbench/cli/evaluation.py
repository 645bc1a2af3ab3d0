"""Evaluation commands: ``evaluate`` (the suite), ``train-judge``, ``reproduce`` and ``figures``."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import common, fields
from workbench.values import resolve_values

# Help texts of the options made from the settings' fields (workbench.cli.fields), in --help order;
# the defaults are the fields' own.
_SUITE_HELP = {
    "methods": "comma-separated methods to compare",
    "out": "folder for results.csv, capability.csv and summary.md",
    "vectors": "folder of controlled vectors (default: probe into OUT/vectors)",
    "prompts": "folder with <value>.csv/.jsonl/.txt prompt files",
    "mmlu": "MMLU-format folder (dev/, test/)",
    "mmlu_n": "questions sampled from the MMLU test files",
    "mmlu_shots": "dev examples before each question",
    "wikitext": "raw text file for perplexity (e.g. WikiText-2 valid.txt)",
    "limit": "at most N prompts per value (quick runs)",
    "p0": "ConVA target probability (default: per value, swept)",
    "coef": "CAA coefficient (default: per value, swept)",
    "mode": common.MODE_HELP,
    "max_new_tokens": "length of each answer in tokens",
    "seed": "seed of the prompt sampling and generation",
    "judge_url": "OpenAI-compatible endpoint for the LLM judge (default: offline)",
    "judge_model": "url: the endpoint's model name; llm: the judge model (default: the research model)",
    "judge": "value judge (default: url with --judge-url, else touche; pairs is for comparison only)",
}
_REPRO_HELP = {
    "out": "results folder (rerun the same command to resume)",
    "mmlu": "MMLU-format folder (dev/, test/); without it no MMLU claim",
    "wikitext": "WikiText-2 valid.txt for perplexity",
    "mmlu_n": "seeded MMLU test questions",
    "sweep_prompts": "training prompts per value in the sweep",
    "max_new_tokens": "answer length in the suite",
    "limit": "held-out prompts per value (default: all)",
    "judge": "value judge for every CSR",
    "second_judge": "also score the same answers with this judge (results_<judge>.csv and a table in the report)",
}


def _check_limit(limit: int | None, what: str) -> None:
    """``--limit`` is absent or at least 1."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1 ({what}), got {limit}. Leave it out to use every prompt.")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``workbench evaluate``: CSR and fluency per value x method, and the capability checks."""
    from workbench.evaluation.suite import SuiteConfig, run_suite

    _check_limit(args.limit, "prompts per value")
    common.check_strengths(args)
    common.check_file_arg(args.mmlu, "--mmlu", kind="folder")  # before any generation, not after it
    common.check_file_arg(args.wikitext, "--wikitext")
    common.check_file_arg(args.prompts, "--prompts", kind="folder")
    cfg = fields.from_args(SuiteConfig, args, values=resolve_values(args.values))
    result = run_suite(common.load(args), cfg)
    print(result.summary)
    print(f"wrote {cfg.out / 'results.csv'}, {cfg.out / 'capability.csv'} and {cfg.out / 'summary.md'}")
    return 0


def cmd_train_judge(args: argparse.Namespace) -> int:
    """``workbench train-judge``: the Touché23-trained value judge."""
    from workbench.evaluation.touche import train_touche_judge

    path, judges = train_touche_judge(args.touche, args.out, c=args.c, seed=args.seed, progress=True)
    for value, t in zip(judges.values, judges.thresholds, strict=True):
        print(f"{value:15s} threshold {t:.2f}  ({judges.meta['positives'][value]} / {judges.meta['training_n']} positive)")
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``workbench reproduce``: the paper's experiments, resumable."""
    from workbench.reproduce import ReproConfig, run_reproduction

    common.check_file_arg(args.mmlu, "--mmlu", kind="folder")
    common.check_file_arg(args.wikitext, "--wikitext")
    _check_limit(args.limit, "held-out prompts per value")
    cfg = fields.from_args(ReproConfig, args, values=tuple(resolve_values(args.values)), model_name=args.model)
    run_reproduction(common.load(args), cfg, stages=tuple(s.strip() for s in args.stages.split(",")))
    print(f"wrote {cfg.out / 'reproduction.md'} (tables in {cfg.out / 'results'}, figures in {cfg.out / 'figures'})")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    """``workbench figures``: every figure as HTML, PNG and PDF."""
    from workbench.figures import write_figures

    out = Path(args.out) if args.out else Path(args.results) / "figures"
    paths = write_figures(Path(args.results), out, formats=tuple(args.formats.split(",")))
    print(f"wrote {len(paths)} files to {out}")
    return 0


def add_figures(sub: argparse._SubParsersAction) -> None:
    """The ``figures`` subcommand."""
    p = sub.add_parser("figures", help="write every figure as HTML, PNG and PDF")
    p.add_argument("--results", default="out", help="folder written by `workbench demo` / `probe` / `evaluate`")
    p.add_argument("--out", default=None, help="folder for the figure files (default: RESULTS/figures)")
    p.add_argument("--formats", default="html,png,pdf", help="comma-separated output formats")
    p.set_defaults(func=cmd_figures)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand."""
    from workbench.constants import JUDGE_NAMES, MODES

    p = sub.add_parser("evaluate", help="the comparison suite: CSR and fluency per value x method, capability")
    p.add_argument("--values", default="all", help=common.VALUES_HELP)
    fields.add_fields(p, "workbench.evaluation.suite:SuiteConfig", _SUITE_HELP, only=_SUITE_HELP, overrides={
        "out": {"required": True}, "mode": {"choices": MODES}, "judge": {"choices": JUDGE_NAMES}})
    common.add_model_args(p)
    p.set_defaults(func=cmd_evaluate)


def add_train_judge(sub: argparse._SubParsersAction) -> None:
    """The ``train-judge`` subcommand."""
    p = sub.add_parser("train-judge", help="train the value judge on Touché23-ValueEval arguments")
    p.add_argument("--touche", required=True, help="folder with arguments-training.tsv and labels-training.tsv")
    p.add_argument("--out", default=None, help="judge file (default: workbench/data/judges/touche.safetensors)")
    p.add_argument("--c", type=float, default=0.3, help="inverse regularisation of the logistic regressions")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    p.set_defaults(func=cmd_train_judge)


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    """The ``reproduce`` subcommand."""
    from workbench.constants import JUDGE_NAMES
    from workbench.reproduce import STAGES, ReproConfig

    p = sub.add_parser("reproduce", help="the paper's experiments, resumable: probes, sweep, suite, "
                       "capability, figures, report")
    p.add_argument("--values", default="all", help="comma-separated value names, or all")
    judges = {"choices": JUDGE_NAMES}
    fields.add_fields(p, ReproConfig, _REPRO_HELP, only=_REPRO_HELP, overrides={"judge": judges, "second_judge": judges})
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in order")
    common.add_model_args(p)
    p.set_defaults(func=cmd_reproduce)
