"""Does ungated ConVA cost MMLU accuracy? A paired comparison of the capability stage's cached predictions.

``workbench reproduce --stages capability`` caches the unsteered predictions on the seeded questions
and, per value, the ``conva-nogate`` predictions on that value's slice (``OUT/mmlu/``). Both are
answers to the same questions, so the exact McNemar test (a two-sided binomial test on the
questions one gets right and the other wrong) compares them more sharply than two intervals do.
Reads the cache only: no model is loaded.

    python -m benchmarks.mmlu_paired --out-dir out/repro --mmlu ../shared/data/mmlu \\
        --out out/bench/mmlu_paired.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from workbench.evaluation.capability import load_mmlu
from workbench.evaluation.suite_capability import mmlu_names, value_slices
from workbench.io import atomic_write_text
from workbench.reproduce import ReproConfig
from workbench.values import VALUE_NAMES


def paired(answers: np.ndarray, base: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Counts of right answers under ``base`` and ``other`` on the same questions, and McNemar's exact p."""
    if not answers.shape == base.shape == other.shape:
        raise ValueError(f"answers, base and other must have one entry per question: {answers.shape}, "
                         f"{base.shape}, {other.shape}.")
    right_base, right_other = base == answers, other == answers
    lost, gained = int(np.sum(right_base & ~right_other)), int(np.sum(~right_base & right_other))
    p = binomtest(lost, lost + gained).pvalue if lost + gained else 1.0
    return {"n": int(answers.size), "right_base": int(right_base.sum()), "right_other": int(right_other.sum()),
            "lost": lost, "gained": gained, "changed": int(np.sum(base != other)), "p": float(p)}


def _predictions(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `workbench reproduce --stages capability` "
                                f"for this output directory first.")
    return np.array(json.loads(path.read_text(encoding="utf-8"))["predictions"], dtype=np.int64)


def ungated_rows(out_dir: Path, mmlu: Path, n: int, shots: int, seed: int, values: list[str]
                 ) -> list[dict[str, Any]]:
    """One paired row per value slice (unsteered vs ``conva-nogate``), then one for all questions."""
    items = load_mmlu(mmlu, n=n, k_shot=shots, seed=seed)
    answers, (_, tag) = np.array([it.answer for it in items]), mmlu_names(len(items), shots)
    base = _predictions(out_dir / "mmlu" / f"none__{tag}.json")
    ungated = base.copy()
    rows = []
    for value, idx in zip(values, value_slices(len(items), values), strict=True):
        ungated[idx] = _predictions(out_dir / "mmlu" / f"conva-nogate__{value}__{tag}.json")
        rows.append({"value": value, **paired(answers[idx], base[idx], ungated[idx])})
    return [*rows, {"value": "all", **paired(answers, base, ungated)}]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = ["| value | n | unsteered right | ungated right | lost | gained | changed | McNemar p |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['value']} | {r['n']} | {r['right_base']} | {r['right_other']} | {r['lost']} | {r['gained']} "
              f"| {r['changed']} | {r['p']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cfg = ReproConfig()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=cfg.out, help="the reproduce output directory")
    ap.add_argument("--mmlu", type=Path, required=True, help="the MMLU data directory")
    ap.add_argument("--n", type=int, default=cfg.mmlu_n, help="seeded questions, as in the capability stage")
    ap.add_argument("--seed", type=int, default=cfg.seed)
    ap.add_argument("--out", type=Path, default=Path("out/bench/mmlu_paired.md"))
    args = ap.parse_args(argv)
    rows = ungated_rows(args.out_dir, args.mmlu, args.n, cfg.mmlu_shots, args.seed, list(VALUE_NAMES))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, markdown(rows))
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
