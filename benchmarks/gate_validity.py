"""Validity of the gates on text nobody here wrote: false triggers, true triggers and value-specificity.

Per gate kind (``residual``, ``encoder``), negatives and value. Negatives: ``unrelated`` (the shipped
unrelated prompts, the default), ``others`` (those plus every other value's train prompts, which
teaches "this value" rather than "a moral question"), ``touche`` (``others`` plus Touché23 arguments of
the *train* split: those labelled V join the positives, the rest the negatives). Measured:

- false-trigger rate on MMLU test questions and on WikiText-2 sentences (nothing there is about V);
- true-trigger rate on Touché23 arguments labelled V;
- value-specificity AUROC of g(x): arguments labelled V against arguments labelled only other values;
- for reference, the open rate on the project's own held-out prompts: V's (what the suite steers), the
  other values' and the unrelated ones (these are written like the training prompts, so they are easy).

Touché23 is split by conclusion (grouped folds, so a topic never sits on two sides) into train (half),
calibration (a quarter) and report (a quarter); MMLU and WikiText samples are split in two the same
way. Every number is measured on the report parts only. Each gate is scored at its own g0 (from its
own cross-validation, as ``workbench.gate.train_gate`` sets it) and at ``g0_cal``: the 95th percentile
of its scores on the calibration MMLU and WikiText text, so that about 5% of unrelated text opens it.
Residual features are read once per text at the gate layer.

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
from workbench.evaluation.touche import ToucheData, embed_texts, grouped_folds, read_touche
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


def touche_splits(data: ToucheData, seed: int) -> dict[str, np.ndarray]:
    """Indices of the Touché train (half), calibration and report (a quarter each) parts, grouped by conclusion."""
    folds = grouped_folds(data.groups, k=4, seed=seed)
    return {"train": np.flatnonzero(folds < 2), "calibration": np.flatnonzero(folds == 2),
            "report": np.flatnonzero(folds == 3)}


def _training_texts(value: str, mode: str, data: ToucheData, train: np.ndarray) -> tuple[list[str] | None, list[str] | None]:
    """(positives, negatives) for ``train_gate``; None keeps its default."""
    if mode == "unrelated":
        return None, None
    pos = load_value_prompts(value)[0]
    neg = load_unrelated_prompts()[0] + [t for v in VALUE_NAMES if v != value for t in load_value_prompts(v)[0]]
    if mode == "touche":
        labelled = data.labels[value][train] == 1
        pos = pos + [data.texts[i] for i in train[labelled]]
        neg = neg + [data.texts[i] for i in train[~labelled]]
    return pos, neg


def _features(kind: str, texts: list[str], model: Any, layer: int) -> np.ndarray:
    if kind == "encoder":
        return embed_texts(texts).astype(np.float64)
    return extract(model, texts, layers=[layer], progress=True, batch_size=16)[:, 0].double().numpy()


_COLUMNS = ("false_mmlu", "false_wikitext", "true_touche", "false_mmlu_cal", "false_wikitext_cal", "true_touche_cal",
            "specificity_auroc")
_HELD_OUT = ("true_held_out", "open_held_out_other_values", "open_held_out_unrelated")


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["Rates at the gate's own g0, then at g0_cal (calibrated on held-apart MMLU/WikiText text).", "",
             "| kind | negatives | value | g0 | false MMLU | false WikiText | true Touché | g0_cal | false MMLU | "
             "false WikiText | true Touché | specificity AUROC |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['negatives']} | {r['value']} | {r['g0']:.2f} | {r['false_mmlu']:.3f} | "
                     f"{r['false_wikitext']:.3f} | {r['true_touche']:.3f} | {r['g0_cal']:.2f} | {r['false_mmlu_cal']:.3f} | "
                     f"{r['false_wikitext_cal']:.3f} | {r['true_touche_cal']:.3f} | {r['specificity_auroc']:.3f} |")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["negatives"]), []).append(r)
    lines += ["", "Means over values (own g0 | g0_cal):", "",
              "| kind | negatives | false MMLU | false WikiText | true Touché | false MMLU | false WikiText | true Touché | "
              "mean AUROC | min AUROC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (kind, neg), rs in groups.items():
        cells = " | ".join(f"{np.mean([r[k] for r in rs]):.3f}" for k in _COLUMNS)
        lines.append(f"| {kind} | {neg} | {cells} | {min(r['specificity_auroc'] for r in rs):.3f} |")
    lines += ["", "The project's own held-out prompts, means over values at the gate's own g0:", "",
              "| kind | negatives | opens on V's | on other values' | on unrelated |", "|---|---|---|---|---|"]
    for (kind, neg), rs in groups.items():
        lines.append(f"| {kind} | {neg} | " + " | ".join(f"{np.mean([r[k] for r in rs]):.3f}" for k in _HELD_OUT) + " |")
    return "\n".join(lines) + "\n"


def _halves(texts: list[str]) -> tuple[list[str], list[str]]:
    """A seeded sample split in two: (calibration, report)."""
    return texts[::2], texts[1::2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct", help="the steered model (residual gates)")
    ap.add_argument("--values", default="all")
    ap.add_argument("--kinds", default="residual,encoder")
    ap.add_argument("--negatives", default="unrelated,others,touche", help="comma-separated: unrelated, others, touche")
    ap.add_argument("--layer", type=int, default=None, help="residual gate layer (default: n_layers // 3)")
    ap.add_argument("--touche", default=str(SHARED / "touche23"))
    ap.add_argument("--mmlu", default=str(SHARED / "mmlu"))
    ap.add_argument("--wikitext", default=str(SHARED / "wikitext2" / "valid.txt"))
    ap.add_argument("--n-mmlu", type=int, default=500, help="MMLU questions in the report part (as many calibrate)")
    ap.add_argument("--n-wikitext", type=int, default=500, help="WikiText sentences in the report part (as many calibrate)")
    ap.add_argument("--n-touche", type=int, default=1500, help="seeded sample of the Touché report part")
    ap.add_argument("--n-touche-train", type=int, default=600, help="seeded sample of the Touché train part (touche mode)")
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
    parts = touche_splits(data, args.seed)
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(parts["report"], min(args.n_touche, len(parts["report"])), replace=False))
    train = np.sort(rng.choice(parts["train"], min(args.n_touche_train, len(parts["train"])), replace=False))
    mmlu_cal, mmlu_rep = _halves(mmlu_questions(Path(args.mmlu), 2 * args.n_mmlu, args.seed))
    wiki_cal, wiki_rep = _halves(wikitext_sentences(Path(args.wikitext), 2 * args.n_wikitext, args.seed))
    held_out = {v: load_value_prompts(v)[1] for v in VALUE_NAMES}
    texts = {"mmlu": mmlu_rep, "wikitext": wiki_rep, "touche": [data.texts[i] for i in sample],
             "calibration": mmlu_cal + wiki_cal, "unrelated_held_out": load_unrelated_prompts()[1],
             **{f"held_out:{v}": ts for v, ts in held_out.items()}}
    rows = []
    for kind in kinds:
        start = time.perf_counter()
        feats = {name: _features(kind, ts, model, layer) for name, ts in texts.items()}
        print(f"{kind}: features in {time.perf_counter() - start:.0f} s", flush=True)
        for mode in modes:
            for value in resolve_values(args.values):
                positives, negatives = _training_texts(value, mode, data, train)
                gate = train_gate(model, value, kind=kind, layer=layer if kind == "residual" else None, seed=args.seed,
                                  positives=positives, negatives=negatives)
                w, b = gate.weight.double().numpy(), gate.bias
                score = {k: 1.0 / (1.0 + np.exp(-(f @ w + b))) for k, f in feats.items()}
                g0_cal = float(np.clip(np.quantile(score["calibration"], 0.95), 0.5, 0.99))
                labelled = data.labels[value][sample] == 1
                others = np.zeros(len(sample), dtype=bool)
                for v in VALUE_NAMES:
                    if v != value:
                        others |= data.labels[v][sample] == 1
                only_others = others & ~labelled
                s = score["touche"]
                row = {"kind": kind, "negatives": mode, "value": value, "g0": gate.g0, "g0_cal": g0_cal}
                for suffix, g0 in (("", gate.g0), ("_cal", g0_cal)):
                    row.update({f"false_mmlu{suffix}": float(np.mean(score["mmlu"] > g0)),
                                f"false_wikitext{suffix}": float(np.mean(score["wikitext"] > g0)),
                                f"true_touche{suffix}": float(np.mean(s[labelled] > g0)),
                                f"open_on_other_values{suffix}": float(np.mean(s[only_others] > g0))})
                other_held = np.concatenate([score[f"held_out:{v}"] for v in VALUE_NAMES if v != value])
                row.update({"true_held_out": float(np.mean(score[f"held_out:{value}"] > gate.g0)),
                            "open_held_out_other_values": float(np.mean(other_held > gate.g0)),
                            "open_held_out_unrelated": float(np.mean(score["unrelated_held_out"] > gate.g0))})
                row.update({"specificity_auroc": float(roc_auc_score(
                                np.r_[np.ones(labelled.sum()), np.zeros(only_others.sum())],
                                np.r_[s[labelled], s[only_others]])),
                            "n_labelled": int(labelled.sum()), "n_only_other_values": int(only_others.sum()),
                            "n_value_train": gate.meta["n_value_train"], "n_negative_train": gate.meta["n_unrelated_train"]})
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    md = _markdown(rows)
    print(md)
    meta = {"model": args.model if model is not None else None, "layer": layer, "n": {k: len(v) for k, v in texts.items()},
            "seed": args.seed, "touche_parts": {k: len(v) for k, v in parts.items()},
            "n_touche_train": len(train)}
    atomic_write_text(args.out, json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
