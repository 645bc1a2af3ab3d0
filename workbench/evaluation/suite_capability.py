"""The suite's capability rows: MMLU and WikiText perplexity, unsteered and under ``conva`` and ``conva-nogate``.

For MMLU each value steers its own slice of the questions, and predictions are cached under
``out/mmlu/`` per method and value slice. A closed gate leaves a question's forward pass unchanged,
so under ``conva`` only the questions that open the gate are run again.

Example:
    >>> rows = capability_rows(model, cfg, fingerprint(model), {"power": value_artefacts(model, cfg, "power")})
    >>> {(method, benchmark): score for method, benchmark, score, n in rows}
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from workbench.evaluation.answer_cache import vector_key
from workbench.evaluation.capability import load_mmlu, mmlu_predictions, wikitext_perplexity
from workbench.evaluation.suite_config import GATE_OPEN_SHARE, SuiteConfig
from workbench.evaluation.suite_inputs import Artefacts, method_spec
from workbench.io import atomic_write_text, text_hash
from workbench.steering import steer

__all__ = ["cached_predictions", "capability_rows", "mmlu_names", "value_slices"]


def mmlu_names(n_items: int, shots: int) -> tuple[str, str]:
    """The MMLU benchmark's name in ``capability.csv`` (``mmlu_5shot``) and the tag of its cache files."""
    benchmark = f"mmlu_{shots}shot"
    return benchmark, f"{n_items}x{benchmark}"


def value_slices(n_items: int, values: Sequence[str]) -> list[np.ndarray]:
    """The question indices each value steers: its own contiguous slice, in the order of ``values``."""
    return np.array_split(np.arange(n_items), len(values))

def cached_predictions(cfg: SuiteConfig, name: str, key: Sequence[str], compute: Callable[[], np.ndarray]
                       ) -> np.ndarray:
    """MMLU predictions from ``out/mmlu/<name>.json`` when its key matches, else computed and saved."""
    path, digest = cfg.out / "mmlu" / f"{name}.json", text_hash(list(key))
    if path.is_file():
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            if rec["key"] == digest:
                return np.array(rec["predictions"], dtype=np.int64)
        except (json.JSONDecodeError, KeyError, TypeError):
            pass  # a damaged file is recomputed
    preds = compute()
    atomic_write_text(path, json.dumps({"key": digest, "predictions": preds.tolist()}) + "\n")
    return preds


def capability_rows(model: Any, cfg: SuiteConfig, fp: str, artefacts: dict[str, Artefacts]
                    ) -> list[tuple[str, str, float, int]]:
    """``(method, benchmark, score, n)`` for ``none``, ``conva`` and ``conva-nogate`` (those in ``cfg.methods``)."""
    rows: list[tuple[str, str, float, int]] = []
    methods = [m for m in ("none", "conva", "conva-nogate") if m in cfg.methods]
    values = list(artefacts)

    def steering_for(method: str, value: str, texts: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
        vec, _, gate = artefacts[value]
        if method == "none":
            return contextlib.nullcontext()
        spec = method_spec(model, cfg, value, method, vec, None, gate)
        opened = gate.is_open(texts, model, g0=spec.g0) if spec.kind.uses_gate else True
        return steer(model, spec, gate_open=opened)

    if cfg.mmlu is not None:
        items = load_mmlu(cfg.mmlu, n=cfg.mmlu_n, k_shot=cfg.mmlu_shots, seed=cfg.seed)
        answers = np.array([it.answer for it in items])
        slices = value_slices(len(items), values)
        benchmark, tag = mmlu_names(len(items), cfg.mmlu_shots)
        base = cached_predictions(cfg, f"none__{tag}", [fp, *(it.prompt for it in items)],
                                  lambda: mmlu_predictions(model, items, progress=cfg.progress))
        for method in methods:
            preds, n_open = base.copy(), 0
            steered = [] if method == "none" else zip(values, slices, strict=True)
            for value, idx in steered:
                vec, _, gate = artefacts[value]
                spec = method_spec(model, cfg, value, method, vec, None, gate)
                if spec.kind.uses_gate:
                    # A closed gate leaves the forward pass bit-identical (tests/test_steering.py), so only
                    # the questions that open it are run again; the others keep the unsteered prediction.
                    idx = idx[gate.is_open([items[i].question for i in idx], model, g0=spec.g0).numpy()]
                n_open += len(idx)
                if len(idx):
                    chosen = [items[i] for i in idx]
                    preds[idx] = cached_predictions(
                        cfg, f"{method}__{value}__{tag}",
                        [fp, str(spec.p0), spec.mode, vector_key(vec), *(it.prompt for it in chosen)],
                        lambda c=chosen, sp=spec: mmlu_predictions(
                            model, c, progress=cfg.progress, steering=lambda _: steer(model, sp, gate_open=True)))
            rows.append((method, benchmark, float(np.mean(preds == answers)), len(items)))
            if method == "conva":
                rows.append((method, benchmark + GATE_OPEN_SHARE, n_open / len(items), len(items)))
    if cfg.wikitext is not None:
        text = cfg.wikitext.read_text(encoding="utf-8")[:4000]
        for method in methods:
            ppls = [wikitext_perplexity(model, cfg.wikitext, n_windows=2,
                                        steering=lambda v=value, m=method: steering_for(m, v, [text]))
                    for value in values]
            rows.append((method, "wikitext_ppl", float(np.mean(ppls)), 2 * len(values)))
    return rows

