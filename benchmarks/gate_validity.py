"""Validity of the gates on text nobody here wrote: false triggers, true triggers and value-specificity.

Per gate kind (``residual``, ``encoder``), negatives (``unrelated``: the shipped unrelated prompts,
today's default; ``others``: those plus every other value's train prompts, which teaches "this value"
rather than "a moral question") and value:

- false-trigger rate on MMLU test questions and on WikiText-2 sentences (nothing there is about V);
- true-trigger rate on Touché23 arguments labelled V;
- value-specificity AUROC of g(x): arguments labelled V against arguments labelled only other values.

Gates are trained as ``workbench.gate.train_gate`` trains them (g0 from their own cross-validation);
nothing here is seen in training. Residual features are read once per text at the gate layer.

    OMP_NUM_THREADS=1 python -m benchmarks.gate_validity --out out/bench/gate_validity.json
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from workbench.activations import extract
from workbench.evaluation.touche import embed_texts, read_touche
from workbench.gate import train_gate
from workbench.io import atomic_write_text
from workbench.model import load_model
from workbench.prompts import load_unrelated_prompts, load_value_prompts
from workbench.values import VALUE_NAMES, resolve_values

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def mmlu_questions(folder: Path, n: int, seed: int) -> list[str]:
    """A seeded sample of ``n`` MMLU test questions (question text only)."""
    questions = []
    for path in sorted((folder / "test").glob("*_test.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            questions += [r["question"].strip() for r in csv.DictReader(fh) if r["question"].strip()]
    if not questions:
        raise FileNotFoundError(f"No test/*_test.csv under {folder}.")
    idx = np.random.default_rng(seed).choice(len(questions), size=min(n, len(questions)), replace=False)
    return [questions[i] for i in sorted(idx)]


def wikitext_sentences(path: Path, n: int, seed: int) -> list[str]:
    """A seeded sample of ``n`` WikiText-2 sentences of 8-60 words (headings skipped, tokenisation undone)."""
    sentences = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
        line = re.sub(r" ([.,;:!?')])", r"\1", line).replace("( ", "(")
        sentences += [s.strip() for s in re.split(r"(?<=[.!?]) ", line) if 8 <= len(s.split()) <= 60]
    idx = np.random.default_rng(seed).choice(len(sentences), size=min(n, len(sentences)), replace=False)
    return [sentences[i] for i in sorted(idx)]


def _negatives(value: str, mode: str) -> list[str] | None:
    if mode == "unrelated":
        return None  # train_gate's default
    return load_unrelated_prompts()[0] + [t for v in VALUE_NAMES if v != value for t in load_value_prompts(v)[0]]


def _features(kind: str, texts: list[str], model: Any, layer: int) -> np.ndarray:
    if kind == "encoder":
        return embed_texts(texts).astype(np.float64)
    return extract(model, texts, layers=[layer], progress=True, batch_size=16)[:, 0].double().numpy()


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| kind | negatives | value | g0 | false MMLU | false WikiText | true Touché | specificity AUROC |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['negatives']} | {r['value']} | {r['g0']:.2f} | {r['false_mmlu']:.3f} | "
                     f"{r['false_wikitext']:.3f} | {r['true_touche']:.3f} | {r['specificity_auroc']:.3f} |")
    groups = sorted({(r["kind"], r["negatives"]) for r in rows})
    lines += ["", "| kind | negatives | mean false MMLU | mean false WikiText | mean true Touché | mean AUROC | "
              "min AUROC |", "|---|---|---|---|---|---|---|"]
    for kind, neg in groups:
        rs = [r for r in rows if r["kind"] == kind and r["negatives"] == neg]
        m = {k: np.mean([r[k] for r in rs]) for k in ("false_mmlu", "false_wikitext", "true_touche", "specificity_auroc")}
        lines.append(f"| {kind} | {neg} | {m['false_mmlu']:.3f} | {m['false_wikitext']:.3f} | {m['true_touche']:.3f} | "
                     f"{m['specificity_auroc']:.3f} | {min(r['specificity_auroc'] for r in rs):.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct", help="the steered model (residual gates)")
    ap.add_argument("--values", default="all")
    ap.add_argument("--kinds", default="residual,encoder")
    ap.add_argument("--negatives", default="unrelated,others", help="comma-separated: unrelated, others")
    ap.add_argument("--layer", type=int, default=None, help="residual gate layer (default: n_layers // 3)")
    ap.add_argument("--touche", default=str(SHARED / "touche23"))
    ap.add_argument("--mmlu", default=str(SHARED / "mmlu"))
    ap.add_argument("--wikitext", default=str(SHARED / "wikitext2" / "valid.txt"))
    ap.add_argument("--n-mmlu", type=int, default=500)
    ap.add_argument("--n-wikitext", type=int, default=500)
    ap.add_argument("--n-touche", type=int, default=1500, help="seeded sample of Touché arguments")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/bench/gate_validity.json")
    args = ap.parse_args(argv)
    for p in (args.touche, args.mmlu, args.wikitext):
        if not Path(p).exists():
            print(f"{p} not found; pass --touche / --mmlu / --wikitext.", file=sys.stderr)
            return 2
    torch.set_grad_enabled(False)
    kinds, modes = args.kinds.split(","), args.negatives.split(",")
    model = load_model(args.model) if "residual" in kinds else None
    layer = (model.cfg.n_layers // 3 if args.layer is None else args.layer) if model is not None else 0
    data = read_touche(args.touche)
    sample = np.sort(np.random.default_rng(args.seed).choice(len(data.texts), min(args.n_touche, len(data.texts)),
                                                             replace=False))
    touche_texts = [data.texts[i] for i in sample]
    texts = {"mmlu": mmlu_questions(Path(args.mmlu), args.n_mmlu, args.seed),
             "wikitext": wikitext_sentences(Path(args.wikitext), args.n_wikitext, args.seed), "touche": touche_texts}
    rows = []
    for kind in kinds:
        start = time.perf_counter()
        feats = {name: _features(kind, ts, model, layer) for name, ts in texts.items()}
        print(f"{kind}: features in {time.perf_counter() - start:.0f} s", flush=True)
        for mode in modes:
            for value in resolve_values(args.values):
                gate = train_gate(model, value, kind=kind, layer=layer if kind == "residual" else None, seed=args.seed,
                                  negatives=_negatives(value, mode))
                w, b = gate.weight.double().numpy(), gate.bias
                score = {k: 1.0 / (1.0 + np.exp(-(f @ w + b))) for k, f in feats.items()}
                labelled = data.labels[value][sample] == 1
                others = np.zeros(len(sample), dtype=bool)
                for v in VALUE_NAMES:
                    if v != value:
                        others |= data.labels[v][sample] == 1
                only_others = others & ~labelled
                s = score["touche"]
                row = {"kind": kind, "negatives": mode, "value": value, "g0": gate.g0,
                       "false_mmlu": float(np.mean(score["mmlu"] > gate.g0)),
                       "false_wikitext": float(np.mean(score["wikitext"] > gate.g0)),
                       "true_touche": float(np.mean(s[labelled] > gate.g0)),
                       "open_on_other_values": float(np.mean(s[only_others] > gate.g0)),
                       "specificity_auroc": float(roc_auc_score(np.r_[np.ones(labelled.sum()), np.zeros(only_others.sum())],
                                                                np.r_[s[labelled], s[only_others]])),
                       "n_labelled": int(labelled.sum()), "n_only_other_values": int(only_others.sum())}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    md = _markdown(rows)
    print(md)
    meta = {"model": args.model if model is not None else None, "layer": layer, "n": {k: len(v) for k, v in texts.items()},
            "seed": args.seed}
    atomic_write_text(args.out, json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
