"""How many answers each method changes from the unsteered one, counted over the suite's cached answers.

Reads ``GENERATIONS/<value>/<method>__<condition>.jsonl`` (what ``workbench reproduce --stages suite``
caches) and prints, per method and condition, the answers that differ from ``none``'s answer to the same
prompt, in total and per value, and for a gated method how many prompts opened its gate.

Example:
    .venv/bin/python scripts/changed_answers.py docs/results/qwen2.5-coder-1.5b/generations \
        --values self-direction,stimulation,hedonism,achievement,power,security,conformity
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METHODS = ("prompt", "caa", "conva", "conva-nogate", "conva-naive")
CONDITIONS = ("plain", "negative-prompt")


def _records(path: Path) -> dict[str, dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the suite for this value first, or leave it out of --values.")
    lines = path.read_text(encoding="utf-8").splitlines()
    return {rec["prompt"]: rec for rec in map(json.loads, filter(str.strip, lines))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generations", type=Path, help="the suite's generations/ folder")
    parser.add_argument("--values", required=True, help="comma-separated values, each with every method cached")
    args = parser.parse_args()
    values = args.values.split(",")
    for condition in CONDITIONS:
        for method in METHODS:
            changed, total, per_value, opened, scored = 0, 0, [], 0, 0
            for value in values:
                base = _records(args.generations / value / f"none__{condition}.jsonl")
                other = _records(args.generations / value / f"{method}__{condition}.jsonl")
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
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
