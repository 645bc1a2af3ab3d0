"""Validity of every value judge on labels written by others (Touché23-ValueEval), and agreement between judges.

Per value, AUROC of each judge's probability against the human labels (positive: any of the
value's Touché categories):

- ``touche``: grouped 5-fold cross-validation: fit on 4 folds (threshold from an inner grouped CV of
  those 4), score the 5th; folds grouped by conclusion, so a judge never sees the fold or topic it scores;
- ``pairs``: trained on the shipped pairs only, scored on every argument;
- ``llm`` (with ``--llm-model``): a seeded sample of ``--llm-n`` arguments, question = the conclusion.

Also the time per 100 judgements, and with ``--answers`` Cohen's kappa between the judges' verdicts
on the suite's generated answers (a suite output folder, or a CSV/JSONL with value, prompt, answer).

    python -m benchmarks.judge_validity --touche ../shared/data/touche23 --out out/bench/judge_validity.json
    python -m benchmarks.judge_validity --llm-model embedded:qwen2.5-coder-1.5b-instruct --llm-n 500 \\
        --answers out/eval --out out/bench/judge_validity_llm.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from workbench.evaluation.judges import load_judge
from workbench.evaluation.touche import cross_validated_scores, embed_texts, read_touche
from workbench.io import atomic_write_text
from workbench.values import VALUE_NAMES


def _balanced(y: np.ndarray, verdict: np.ndarray) -> float:
    return float(0.5 * (np.mean(verdict[y == 1]) + np.mean(~verdict[y == 0])))


def time_per_100(judge: Any, answers: list[str], questions: list[str]) -> float:
    """Seconds per 100 judgements of ``answers``."""
    start = time.perf_counter()
    judge.probability(answers, questions)
    return 100.0 * (time.perf_counter() - start) / len(answers)


def read_answers(path: Path) -> list[dict[str, str]]:
    """Generated answers as ``{value, prompt, answer}``: a suite folder (``generations/``) or a CSV/JSONL file."""
    if path.is_dir():
        files = sorted((path / "generations").glob("*/*.jsonl"))
        if not files:
            raise FileNotFoundError(f"No generations/<value>/*.jsonl under {path}: run `workbench evaluate` first.")
        rows = []
        for f in files:
            for line in f.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                rows.append({"value": f.parent.name, "prompt": rec["prompt"], "answer": rec["answer"],
                             "source": f.stem, "perplexity": rec.get("perplexity")})
        return rows
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def agreement(rows: list[dict[str, str]], judges: dict[str, Any]) -> list[dict[str, Any]]:
    """Cohen's kappa of every judge pair's verdicts, per value and over all answers."""
    verdicts: dict[str, dict[str, np.ndarray]] = {name: {} for name in judges}
    by_value: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_value.setdefault(r["value"], []).append(r)
    for value, rs in by_value.items():
        answers, questions = [r["answer"] for r in rs], [r.get("prompt", "") for r in rs]
        for name, make in judges.items():
            verdicts[name][value] = np.asarray(make(value).judge(answers, questions), dtype=bool)
    out, names = [], list(judges)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for value in [*by_value, "all"]:
                va = np.concatenate(list(verdicts[a].values())) if value == "all" else verdicts[a][value]
                vb = np.concatenate(list(verdicts[b].values())) if value == "all" else verdicts[b][value]
                kappa = cohen_kappa_score(va, vb) if len(set(va) | set(vb)) > 1 else 1.0
                out.append({"judges": f"{a} vs {b}", "value": value, "kappa": float(kappa), "n": len(va),
                            f"yes_{a}": float(va.mean()), f"yes_{b}": float(vb.mean())})
    return out


def fluency_agreement(folder: Path, rows: list[dict[str, Any]], llm_model: Any) -> dict[str, Any]:
    """Kappa between the suite's perplexity/repetition fluency flags and the LLM judge's fluency rubric.

    The flags use the thresholds the suite calibrated (``fluency_calibration.json`` in ``folder``).
    """
    from workbench.evaluation.metrics import FluencyCalibration, fluency_flags

    calibration = FluencyCalibration(**json.loads((folder / "fluency_calibration.json").read_text(encoding="utf-8")))
    answers = [r["answer"] for r in rows]
    ppl = [np.inf if r.get("perplexity") is None else float(r["perplexity"]) for r in rows]
    flags = fluency_flags(answers, ppl, calibration)
    llm = np.asarray(load_judge("llm", None, llm_model, rubric="fluency").judge(answers), dtype=bool)
    kappa = cohen_kappa_score(flags, llm) if len(set(flags) | set(llm)) > 1 else 1.0
    return {"kappa": float(kappa), "n": len(rows), "fluent_perplexity": float(flags.mean()),
            "fluent_llm": float(llm.mean()), "agree": float(np.mean(flags == llm))}


def _markdown(rows: list[dict[str, Any]], timing: dict[str, float], kappas: list[dict[str, Any]]) -> str:
    names = [k[len("auroc_"):] for k in rows[0] if k.startswith("auroc_")]
    lines = ["| value | positives | " + " | ".join(f"AUROC {n}" for n in names) + " |", "|---" * (len(names) + 2) + "|"]
    for r in rows:
        lines.append(f"| {r['value']} | {r['positives']} | " + " | ".join(
            "-" if r[f"auroc_{n}"] is None else f"{r[f'auroc_{n}']:.3f}" for n in names) + " |")
    means = [np.mean([r[f"auroc_{n}"] for r in rows if r[f"auroc_{n}"] is not None]) for n in names]
    lines.append("| **mean** | | " + " | ".join(f"**{m:.3f}**" for m in means) + " |")
    lines += ["", "| judge | seconds per 100 judgements |", "|---|---|"]
    lines += [f"| {n} | {s:.2f} |" for n, s in timing.items()]
    if kappas:
        lines += ["", "| judges | value | kappa | n |", "|---|---|---|---|"]
        lines += [f"| {k['judges']} | {k['value']} | {k['kappa']:.3f} | {k['n']} |" for k in kappas]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--touche", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "touche23"))
    ap.add_argument("--out", default="out/bench/judge_validity.json")
    ap.add_argument("--judges", default="touche,pairs", help="comma-separated; add llm to score the LLM judge")
    ap.add_argument("--llm-model", default=None, help="load_model source of the LLM judge (implies llm)")
    ap.add_argument("--llm-n", type=int, default=500, help="seeded sample of arguments for the LLM judge")
    ap.add_argument("--answers", default=None, help="suite output folder or CSV/JSONL of value,prompt,answer for kappa")
    ap.add_argument("--answers-n", type=int, default=None, help="seeded sample of the answers for kappa (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    folder = Path(args.touche)
    if not folder.is_dir():
        print(f"Touché23 folder {folder} not found; pass --touche PATH.", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.judges.split(",") if n.strip()]
    llm_model = None
    if args.llm_model or "llm" in names:
        from workbench.evaluation.llm_judge import default_judge_model
        from workbench.model import load_model

        llm_model = load_model(args.llm_model) if args.llm_model else default_judge_model()
        names = list(dict.fromkeys([*names, "llm"]))
    data = read_touche(folder)
    emb = embed_texts(data.texts, progress=True)
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(data.texts), size=min(args.llm_n, len(data.texts)), replace=False))
    rows, timing = [], {}
    timing_texts = [t[:400] for t in data.texts[:100]]
    for value in VALUE_NAMES:
        y = data.labels[value]
        row: dict[str, Any] = {"value": value, "positives": int(y.sum()), "n": len(y)}
        for name in names:
            if name == "touche":
                prob, verdict = cross_validated_scores(emb, y, data.groups, seed=args.seed)
                row["balanced_acc_touche"] = _balanced(y, verdict)
            elif name == "pairs":
                judge = load_judge("pairs", value)
                prob = judge.classifier.predict_proba(emb)[:, 1]
                row["balanced_acc_pairs"] = _balanced(y, prob >= judge.threshold)
            elif name == "llm":
                judge = load_judge("llm", value, llm_model)
                texts, questions = [data.texts[i] for i in sample], [data.groups[i] for i in sample]
                prob = judge.probability(texts, questions)
                ys = y[sample]
                row["n_llm"] = len(sample)
                row["balanced_acc_llm"] = _balanced(ys, prob >= judge.threshold)
                row["auroc_llm"] = float(roc_auc_score(ys, prob)) if 0 < ys.sum() < len(ys) else None
                continue
            else:
                raise ValueError(f"Unknown judge {name!r} for this benchmark; use touche, pairs, llm.")
            row[f"auroc_{name}"] = float(roc_auc_score(y, prob))
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    for name in names:
        # no disk cache: every judgement timed is computed
        judge = load_judge(name, "benevolence", llm_model, cache=False) if name == "llm" else load_judge(name, "benevolence")
        n = 100 if name != "llm" else 16
        timing[name] = time_per_100(judge, timing_texts[:n], [""] * n)
    kappas, fluency = [], None
    if args.answers:
        answers = read_answers(Path(args.answers))
        if args.answers_n is not None and args.answers_n < len(answers):
            keep = np.sort(np.random.default_rng(args.seed).choice(len(answers), args.answers_n, replace=False))
            answers = [answers[i] for i in keep]
        makers = {n: (lambda v, n=n: load_judge(n, v, llm_model if n == "llm" else None)) for n in names}
        kappas = agreement(answers, makers)
        if llm_model is not None and (Path(args.answers) / "fluency_calibration.json").is_file():
            fluency = fluency_agreement(Path(args.answers), answers, llm_model)
    result = {"per_value": rows, "seconds_per_100": timing, "kappa": kappas, "fluency_agreement": fluency,
              "mean_auroc": {n: float(np.mean([r[f"auroc_{n}"] for r in rows if r.get(f"auroc_{n}") is not None]))
                             for n in names},
              "protocol": {"touche": "grouped 5-fold CV by conclusion (threshold from inner grouped CV)",
                           "pairs": "trained on the shipped pairs; all 5393 arguments",
                           "llm": f"seeded sample of {len(sample)} arguments, question = conclusion"}}
    md = _markdown(rows, timing, kappas)
    if fluency is not None:
        md += (f"\nFluency, perplexity/repetition flags vs the LLM fluency rubric on {fluency['n']} answers: kappa "
               f"{fluency['kappa']:.3f}, agreement {fluency['agree']:.3f} (fluent: {fluency['fluent_perplexity']:.3f} "
               f"vs {fluency['fluent_llm']:.3f})\n")
    print(md)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(Path(args.out).with_suffix(".md"), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
