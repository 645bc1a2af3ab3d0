"""Validity of the offline value judge on real data written by others: Touché23-ValueEval arguments.

For each Schwartz value, the judge's probability is scored against the human labels (an argument
counts as positive for a value when any of its Touché categories is marked) as AUROC.

    python -m benchmarks.judge_validity --touche ../shared/data/touche23 --out out/bench/judge_validity.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from workbench.evaluation.judges import train_encoder_judge
from workbench.gate import load_encoder
from workbench.io import atomic_write_text
from workbench.values import VALUE_NAMES

# Touché23 categories -> Schwartz basic values ("Face" and "Humility" have no single home).
CATEGORY_MAP = {
    "self-direction": ("Self-direction: thought", "Self-direction: action"),
    "stimulation": ("Stimulation",),
    "hedonism": ("Hedonism",),
    "achievement": ("Achievement",),
    "power": ("Power: dominance", "Power: resources"),
    "security": ("Security: personal", "Security: societal"),
    "conformity": ("Conformity: rules", "Conformity: interpersonal"),
    "tradition": ("Tradition",),
    "benevolence": ("Benevolence: caring", "Benevolence: dependability"),
    "universalism": ("Universalism: concern", "Universalism: nature", "Universalism: tolerance",
                     "Universalism: objectivity"),
}


def read_touche(folder: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Argument texts ("<conclusion>. <premise>") and, per value, 0/1 labels in the same order."""
    args_path, labels_path = folder / "arguments-training.tsv", folder / "labels-training.tsv"
    for p in (args_path, labels_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: point --touche at the Touché23-ValueEval folder.")
    with args_path.open(encoding="utf-8", newline="") as fh:
        arguments = {r["Argument ID"]: f"{r['Conclusion'].strip()}. {r['Premise'].strip()}"
                     for r in csv.DictReader(fh, delimiter="\t")}
    with labels_path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    ids = [r["Argument ID"] for r in rows if r["Argument ID"] in arguments]
    by_id = {r["Argument ID"]: r for r in rows}
    labels = {v: np.array([max(int(by_id[i][c]) for c in cats) for i in ids]) for v, cats in CATEGORY_MAP.items()}
    return [arguments[i] for i in ids], labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--touche", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "touche23"))
    ap.add_argument("--out", default="out/bench/judge_validity.json")
    args = ap.parse_args(argv)
    folder = Path(args.touche)
    if not folder.is_dir():
        print(f"Touché23 folder {folder} not found; pass --touche PATH.", file=sys.stderr)
        return 2
    texts, labels = read_touche(folder)
    emb = load_encoder().encode(texts, normalize_embeddings=True, show_progress_bar=True, batch_size=64)
    rows = []
    for value in VALUE_NAMES:
        judge = train_encoder_judge(value)
        scores = judge.classifier.predict_proba(emb)[:, 1]
        y = labels[value]
        rows.append({"value": value, "auroc": float(roc_auc_score(y, scores)), "positives": int(y.sum()), "n": len(y)})
        print(f"{value:15s} AUROC {rows[-1]['auroc']:.3f}  ({rows[-1]['positives']} / {len(y)} positive)", flush=True)
    mean = float(np.mean([r["auroc"] for r in rows]))
    print(f"{'mean':15s} AUROC {mean:.3f}")
    atomic_write_text(args.out, json.dumps({"per_value": rows, "mean_auroc": mean}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
