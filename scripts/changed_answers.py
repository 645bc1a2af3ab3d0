"""How many answers each method changes from the unsteered one, counted over the suite's cached answers.

Reads the answers ``workbench reproduce --stages suite`` cached under ``OUT/generations/``
(:func:`workbench.evaluation.answer_cache.answers_file`) and prints, per method and condition, the
answers that differ from ``none``'s answer to the same prompt, in total and per value, and for a
gated method how many prompts opened its gate.

Example:
    .venv/bin/python scripts/changed_answers.py docs/results/qwen2.5-coder-1.5b \
        --values self-direction,stimulation,hedonism,achievement,power,security,conformity
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.evaluation.answer_cache import answers_file, read_answers
from workbench.evaluation.suite_config import CONDITIONS
from workbench.methods import SUITE_METHODS
from workbench.values import resolve_values


def _by_prompt(out: Path, value: str, method: str, condition: str) -> dict[str, dict[str, Any]]:
    path = answers_file(out, value, method, condition)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the suite for this value first, or leave it out of --values.")
    return {rec["prompt"]: rec for rec in read_answers(path).values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the results folder that holds the suite's generations/")
    parser.add_argument("--values", required=True, help="comma-separated values, each with every method cached")
    args = parser.parse_args()
    values = resolve_values(args.values)
    for condition in CONDITIONS:
        for method in (m for m in SUITE_METHODS if m != "none"):
            changed, total, per_value, opened, scored = 0, 0, [], 0, 0
            for value in values:
                base = _by_prompt(args.out, value, "none", condition)
                other = _by_prompt(args.out, value, method, condition)
                n = sum(other[p]["answer"] != rec["answer"] for p, rec in base.items() if p in other)
                gated = [rec for rec in other.values() if rec.get("gate_score") is not None]
                opened += sum(bool(rec["fired"]) for rec in gated)
                changed, total, scored = changed + n, total + len(base), scored + len(gated)
                per_value.append(f"{value} {n}/{len(base)}")
            gate = f"  gate open {opened}/{scored}" if scored else ""
            print(f"{condition:16} {method:13} changed {changed}/{total}{gate}  ({', '.join(per_value)})")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
