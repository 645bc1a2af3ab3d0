"""Metrics on hand-checkable definitions: control success rate, repetition, answer perplexity, fluency.

Example:
    >>> control_success_rate([True, False, True, True])
    0.75
    >>> repetition_ratio("the cat the cat the cat the cat")
    0.5
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["FluencyCalibration", "answer_perplexity", "calibrate_fluency", "control_success_rate",
           "fluency_flags", "repetition_ratio"]


def control_success_rate(verdicts: Sequence[bool]) -> float:
    """Share of answers judged to prioritise the value."""
    if len(verdicts) == 0:
        raise ValueError("No verdicts: cannot compute a control success rate over zero answers.")
    return float(np.mean([bool(v) for v in verdicts]))


def repetition_ratio(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram (0 = no repetition, -> 1 = a loop)."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def answer_perplexity(model: Any, chats: Sequence[str], answers: Sequence[str], batch_size: int = 8) -> np.ndarray:
    """Perplexity of each answer's tokens given its chat prompt, under ``model`` (no steering)."""
    tok = model.tokenizer
    out = np.full(len(answers), np.inf)
    for start in range(0, len(answers), batch_size):
        rows = range(start, min(start + batch_size, len(answers)))
        prompt_ids = [tok(chats[i], add_special_tokens=False)["input_ids"] for i in rows]
        answer_ids = [tok(answers[i], add_special_tokens=False)["input_ids"] for i in rows]
        seqs = [p + a for p, a in zip(prompt_ids, answer_ids, strict=True)]
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=model.cfg.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=model.cfg.device)
        with torch.no_grad():
            logp = torch.log_softmax(model(ids, attention_mask=mask).float(), dim=-1)
        for j, i in enumerate(rows):
            n_ans = len(answer_ids[j])
            if n_ans == 0:
                continue
            targets = ids[j, width - n_ans :]
            preds = logp[j, width - n_ans - 1 : width - 1]
            nll = -preds.gather(1, targets[:, None]).mean().item()
            out[i] = math.exp(min(nll, 50.0))
    return out


@dataclass(frozen=True)
class FluencyCalibration:
    """Thresholds calibrated on unsteered answers: above either, an answer counts as not fluent."""

    max_perplexity: float
    max_repetition: float


def calibrate_fluency(perplexities: Sequence[float], repetitions: Sequence[float], quantile: float = 0.95,
                      slack: float = 1.5) -> FluencyCalibration:
    """Thresholds = ``slack`` x the ``quantile`` of unsteered answers (repetition at least 0.2).

    With no non-empty unsteered answer there is nothing to calibrate on: the perplexity threshold is
    then infinite (with a warning) and only emptiness and repetition count.
    """
    ppl = np.asarray([p for p in perplexities if np.isfinite(p)])
    rep = np.asarray(repetitions) if len(repetitions) else np.zeros(1)
    if len(ppl) == 0:
        warnings.warn("No non-empty unsteered answers: fluency uses emptiness and repetition only.", stacklevel=2)
        return FluencyCalibration(float("inf"), float(max(0.2, np.quantile(rep, quantile) * slack)))
    return FluencyCalibration(float(np.quantile(ppl, quantile) * slack),
                              float(max(0.2, np.quantile(rep, quantile) * slack)))


def fluency_flags(answers: Sequence[str], perplexities: Sequence[float], calibration: FluencyCalibration) -> np.ndarray:
    """True where an answer is non-empty, below the perplexity threshold and not degenerate."""
    return np.array([bool(a.strip()) and np.isfinite(p) and p <= calibration.max_perplexity
                     and repetition_ratio(a) <= calibration.max_repetition
                     for a, p in zip(answers, perplexities, strict=True)])
