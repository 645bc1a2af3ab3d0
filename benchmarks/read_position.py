"""Which read position makes P_V rank a value's own prompts above other values' prompts?

    python -m benchmarks.read_position --model embedded:smollm2-135m-instruct --out out/read_position

For each read format (:mod:`workbench.readout`: ``bare``, ``user-end``, ``assistant-start``) the
probes are fitted as ``probe_value`` fits them (same split, same C) on pair sentences in that format.
Each probe is then read where steering reads it: the last token of the chat-templated held-out
prompts of all 10 values. Per value and layer: the AUROC of P_V for the value's own held-out prompts
against the other values' held-out prompts, and the mean P_V on each. Results go to
``OUT/read_position.csv`` and ``OUT/read_position.md``; each (format, value) is saved as it finishes,
so a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.io import atomic_write_text
from workbench.tables import write_csv

__all__ = ["main", "read_position_rows"]


def _steering_layers(test_acc: Sequence[float], exclude_last: int = 5) -> tuple[int, ...]:
    from workbench.probes import FALLBACK_TOP, select_layers

    return select_layers(test_acc, 0.9, min(exclude_last, len(test_acc) - 1), fallback_top=FALLBACK_TOP)


def read_position_rows(model: Any, value: str, fmt: str, eval_acts: torch.Tensor, eval_values: Sequence[str],
                       c: float | None = None, max_pairs: int | None = None) -> list[dict[str, Any]]:
    """Per layer: probe test accuracy (in ``fmt``) and P_V's AUROC / means on the steering-position prompts.

    ``max_pairs``: a seeded sample of the value's pairs (the same for every format), for a cheaper run.
    """
    from scipy.special import expit
    from sklearn.metrics import roc_auc_score

    from workbench.datasets import load_pairs
    from workbench.probes import DEFAULT_C, fit_probes, pair_activations

    pairs = load_pairs(value)
    if max_pairs is not None and max_pairs < len(pairs):
        keep = np.sort(np.random.default_rng(0).choice(len(pairs), max_pairs, replace=False))
        pairs = [pairs[i] for i in keep]
    _, sets = pair_activations(model, pairs, cache=True, progress=False, read_format=fmt)
    fit = fit_probes(*sets, c=DEFAULT_C if c is None else c)
    own = np.array([v == value for v in eval_values])
    rows = []
    for layer in range(model.cfg.n_layers):
        logit = (eval_acts[:, layer].double() @ fit["weight"][layer].double() + float(fit["bias"][layer])).numpy()
        pv = expit(logit)
        rows.append({"format": fmt, "value": value, "layer": layer, "test_acc": float(fit["test_acc"][layer]),
                     "auroc": float(roc_auc_score(own, logit)), "pv_own": float(pv[own].mean()),
                     "pv_other": float(pv[~own].mean())})
    return rows


def _summary(rows: list[dict[str, Any]], model_name: str) -> str:
    formats = list(dict.fromkeys(r["format"] for r in rows))
    values = list(dict.fromkeys(r["value"] for r in rows))
    lines = [f"Model: {model_name}. AUROC of P_V (own held-out prompts vs other values' held-out prompts, read at the "
             "assistant start of the chat prompt), mean over each value's steering layers (test acc > 0.9 outside the "
             "last 5, else the 3 best); in brackets the mean P_V on own / other prompts.", "",
             "| value | " + " | ".join(formats) + " |", "|---|" + "---|" * len(formats)]
    means: dict[str, list[float]] = {f: [] for f in formats}
    for value in values:
        cells = []
        for fmt in formats:
            sub = [r for r in rows if r["value"] == value and r["format"] == fmt]
            if not sub:
                cells.append("-")
                continue
            layers = _steering_layers([r["test_acc"] for r in sub])
            pick = [sub[i] for i in layers]
            auc = float(np.mean([r["auroc"] for r in pick]))
            means[fmt].append(auc)
            cells.append(f"{auc:.2f} ({np.mean([r['pv_own'] for r in pick]):.2f} / {np.mean([r['pv_other'] for r in pick]):.2f})")
        lines.append(f"| {value} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{np.mean(means[f]):.3f}**" if means[f] else "-" for f in formats) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from workbench.constants import DEFAULT_MODEL
    from workbench.readout import READ_FORMATS, check_read_format

    p = argparse.ArgumentParser(prog="python -m benchmarks.read_position", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device", default="auto")
    p.add_argument("--values", default="all")
    p.add_argument("--formats", default=",".join(READ_FORMATS))
    p.add_argument("--max-pairs", type=int, default=None, help="seeded sample of each value's pairs (default: all)")
    p.add_argument("--out", default="out/read_position")
    args = p.parse_args(argv)
    formats = [check_read_format(f.strip()) for f in args.formats.split(",")]
    torch.set_grad_enabled(False)
    from workbench.activations import extract
    from workbench.chat_template import chat_texts
    from workbench.model import load_model
    from workbench.prompts import load_value_prompts
    from workbench.values import VALUE_NAMES, resolve_values

    values = resolve_values(args.values)
    out = Path(args.out)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device=args.device)
    eval_prompts, eval_values = [], []
    for v in VALUE_NAMES:
        held_out = load_value_prompts(v)[1]
        eval_prompts += held_out
        eval_values += [v] * len(held_out)
    eval_acts = extract(model, chat_texts(model, eval_prompts), cache=True, progress=False)
    rows: list[dict[str, Any]] = []
    for fmt in formats:
        for value in values:
            part = out / "parts" / (f"{fmt}.{value}.json" if args.max_pairs is None else f"{fmt}.{value}.n{args.max_pairs}.json")
            if not part.is_file():
                print(f"[read_position] {fmt} {value} ...", file=sys.stderr, flush=True)
                atomic_write_text(part, json.dumps(read_position_rows(model, value, fmt, eval_acts, eval_values,
                                                                             max_pairs=args.max_pairs)))
            rows += json.loads(part.read_text())
    write_csv(out / "read_position.csv", list(rows[0]), [list(r.values()) for r in rows])
    md = _summary(rows, args.model)
    atomic_write_text(out / "read_position.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
