"""Does a judge read the value at all? AUROC of P(value) on the positive vs negative sentences of shipped pairs.

A sanity check beside ``benchmarks/judge_validity.py``, not a validity figure: the pair sentences are
clear-cut and written here, and the ``pairs`` judge is trained on them (its number is inflated by
construction). A judge near 0.5 on them is broken or too weak for the task; a judge high on them
but at chance on Touché23 reads explicit value statements but not arguments written by others.
Seeded sample of ``--n`` pairs per value; the question is left empty.

    python -m benchmarks.judge_pairs_check --judges touche,pairs,llm \\
        --llm-model embedded:qwen2.5-coder-1.5b-instruct --n 10 --out out/bench/judge_pairs_check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from workbench.datasets import load_pairs
from workbench.evaluation.judges import load_judge
from workbench.io import atomic_write_text
from workbench.values import VALUE_NAMES


def pair_auroc(judge: Any, value: str, n: int, seed: int = 0) -> dict[str, Any]:
    """AUROC of ``judge.probability`` on ``n`` seeded pairs of ``value``: positive sentences vs negative ones."""
    pairs = load_pairs(value)
    pick = np.sort(np.random.default_rng(seed).choice(len(pairs), size=min(n, len(pairs)), replace=False))
    texts = [pairs[i].positive for i in pick] + [pairs[i].negative for i in pick]
    prob = np.asarray(judge.probability(texts, [""] * len(texts)), dtype=float)
    y = np.r_[np.ones(len(pick)), np.zeros(len(pick))]
    return {"value": value, "n_pairs": len(pick), "auroc": float(roc_auc_score(y, prob)),
            "mean_p_positive": float(prob[: len(pick)].mean()), "mean_p_negative": float(prob[len(pick):].mean())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--judges", default="touche,pairs", help="comma-separated: touche, pairs, llm")
    ap.add_argument("--llm-model", default=None, help="load_model source of the LLM judge (implies llm)")
    ap.add_argument("--n", type=int, default=10, help="seeded pairs per value")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/bench/judge_pairs_check.json")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.judges.split(",") if n.strip()]
    model = None
    if args.llm_model or "llm" in names:
        from workbench.evaluation.llm_judge import default_judge_model
        from workbench.model import load_model

        model = load_model(args.llm_model) if args.llm_model else default_judge_model()
        names = list(dict.fromkeys([*names, "llm"]))
    rows = []
    for value in VALUE_NAMES:
        for name in names:
            row = {"judge": name, **pair_auroc(load_judge(name, value, model if name == "llm" else None), value,
                                               args.n, args.seed)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = ["| value | " + " | ".join(f"AUROC {n}" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    by = {(r["value"], r["judge"]): r["auroc"] for r in rows}
    lines += [f"| {v} | " + " | ".join(f"{by[(v, n)]:.3f}" for n in names) + " |" for v in VALUE_NAMES]
    lines.append("| **mean** | " + " | ".join(
        f"**{np.mean([by[(v, n)] for v in VALUE_NAMES]):.3f}**" for n in names) + " |")
    md = "\n".join(lines) + "\n"
    print(md)
    atomic_write_text(Path(args.out), json.dumps({"rows": rows, "n": args.n, "seed": args.seed}, indent=2) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
