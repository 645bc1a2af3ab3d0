"""Compare models on general capability: MMLU k-shot accuracy on one seeded sample, and perplexity.

    python -m benchmarks.models --models embedded:smollm2-135m-instruct,embedded:qwen2.5-coder-1.5b-instruct \
        --mmlu ../shared/data/mmlu --n 300 --shots 5 --out out/bench_models

Each model's answers are saved under ``OUT/<model>.mmlu.json`` (with the sampled questions' indices
and the 95% Wilson interval), so a killed run resumes with the models not yet done. Unsteered only;
the steered comparison is the evaluation suite's job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from workbench.io import atomic_write_text

__all__ = ["main"]


def _run_one(name: str, args: argparse.Namespace) -> dict:
    import numpy as np

    from workbench.evaluation.capability import load_mmlu, mmlu_predictions
    from workbench.model import load_model
    from workbench.stats import wilson_interval

    t0 = time.perf_counter()
    model = load_model(name, device=args.device)
    load_s = time.perf_counter() - t0
    items = load_mmlu(args.mmlu, n=args.n, k_shot=args.shots, seed=args.seed)
    t1 = time.perf_counter()
    preds = mmlu_predictions(model, items, batch_size=args.batch_size)
    correct = int(np.sum(preds == np.array([it.answer for it in items])))
    lo, hi = wilson_interval(correct / len(items), len(items))
    return {"model": name, "n": len(items), "shots": args.shots, "seed": args.seed, "correct": correct,
            "accuracy": correct / len(items), "ci95": [lo, hi], "load_s": load_s,
            "mmlu_s": time.perf_counter() - t1, "predictions": preds.tolist(),
            "subjects": sorted({it.subject for it in items})}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.models", description=__doc__.split("\n")[0])
    p.add_argument("--models", required=True, help="comma-separated load_model sources")
    p.add_argument("--mmlu", required=True, help="MMLU-format folder (dev/, test/)")
    p.add_argument("--n", type=int, default=300, help="seeded sample of test questions")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="out/bench_models")
    args = p.parse_args(argv)
    if not (Path(args.mmlu) / "test").is_dir():
        print(f"error: {args.mmlu} has no test/ folder: point --mmlu at an MMLU-format folder", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        path = out / f"{name.replace(':', '_').replace('/', '_')}.mmlu.json"
        key = {"n": args.n, "shots": args.shots, "seed": args.seed}
        done = json.loads(path.read_text()) if path.is_file() else None
        if done is None or any(done.get(k) != v for k, v in key.items()):
            print(f"[models] {name}: MMLU {args.shots}-shot on {args.n} questions ...", file=sys.stderr, flush=True)
            done = _run_one(name, args)
            atomic_write_text(path, json.dumps(done, indent=1) + "\n")
        rows.append(done)
    lines = ["| model | MMLU acc | 95% CI | n | shots | MMLU time (s) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['accuracy']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | {r['n']} | {r['shots']} | "
              f"{r['mmlu_s']:.0f} |" for r in rows]
    atomic_write_text(out / "models.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
