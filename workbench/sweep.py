"""Per-value defaults for P0 (ConVA) and the CAA coefficient, chosen by a sweep on training prompts.

For each value, answers to the value's *training* prompts (never the held-out ones the evaluation
uses) are generated unsteered, with ConVA (gate ignored: every prompt here is about the value) at
each P0 of the grid, and with CAA at each coefficient. The judge (``judge``, default ``touche``: trained
on Touché23, not on the pairs the vectors come from) gives the control success rate (CSR) and the mean
judge probability; fluency is judged against thresholds calibrated on the
unsteered answers. Per method, the chosen setting has the highest CSR among those whose fluency is at
least ``min_fluency`` times the unsteered fluency; CSR ties go to the higher mean probability, then
to the weaker setting. When none keeps fluent enough, the weakest wins.

The shipped ``workbench/data/steering_defaults.json`` was written by
``workbench sweep --values all --out out/sweep`` on the embedded model; ``steering_defaults(value)``
reads it, and the CLI and the evaluation suite use it when no ``--p0`` / ``--coef`` is given.

Example:
    >>> rows, chosen = sweep_defaults(model, {"power": vec}, n_prompts=6)
    >>> chosen["power"]
    SteeringDefaults(p0=0.95, coef=4.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.constants import SWEEP_NEW_TOKENS, SWEEP_PROMPTS
from workbench.defaults import FALLBACK, SteeringDefaults, load_defaults, save_defaults, steering_defaults
from workbench.evaluation.judges import DEFAULT_JUDGE, load_judge
from workbench.evaluation.metrics import answer_perplexity, calibrate_fluency, fluency_flags, repetition_ratio
from workbench.generation import chat_texts, generate
from workbench.prompts import load_value_prompts
from workbench.steering import SteeringSpec
from workbench.values import get_value
from workbench.vectors import ValueVector

__all__ = ["COEF_GRID", "FALLBACK", "P0_GRID", "SteeringDefaults", "SweepRow", "load_defaults", "save_defaults",
           "steering_defaults", "sweep_defaults"]

P0_GRID = (0.9, 0.99, 0.999, 0.9999)
COEF_GRID = (0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class SweepRow:
    """One setting of the sweep: method (``none``, ``conva`` or ``caa``), its strength, CSR, fluency and
    the judge's mean probability (``score``)."""

    value: str
    method: str
    setting: float
    csr: float
    fluency: float
    n: int
    score: float


def _choose(rows: Sequence[SweepRow], base_fluency: float, min_fluency: float) -> float:
    fluent = [r for r in rows if r.fluency >= min_fluency * base_fluency] or [min(rows, key=lambda r: r.setting)]
    return max(fluent, key=lambda r: (r.csr, r.score, -r.setting)).setting


def sweep_defaults(
    model: Any,
    vectors: Mapping[str, ValueVector],
    p0_grid: Sequence[float] = P0_GRID,
    coef_grid: Sequence[float] = COEF_GRID,
    n_prompts: int = SWEEP_PROMPTS,
    max_new_tokens: int = SWEEP_NEW_TOKENS,
    min_fluency: float = 0.8,
    judge_factory: Callable[[str], Any] | None = None,
    progress: bool = True,
    judge: str = DEFAULT_JUDGE,
) -> tuple[list[SweepRow], dict[str, SteeringDefaults]]:
    """Sweep P0 and the CAA coefficient per value on its training prompts; returns all rows and the choice.

    The judge is ``judge_factory(value)`` when given, else ``load_judge(judge, value)``.
    """
    if not vectors:
        raise ValueError("No vectors to sweep: pass {value: ValueVector}.")
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be >= 1, got {n_prompts}.")
    if not 0.0 <= min_fluency <= 1.0:
        raise ValueError(f"min_fluency is a share of the unsteered fluency, in [0, 1]; got {min_fluency}.")
    rows: list[SweepRow] = []
    chosen: dict[str, SteeringDefaults] = {}
    for value, vec in tqdm(vectors.items(), desc="sweep", disable=not progress):
        name = get_value(value).name
        prompts = load_value_prompts(name)[0][:n_prompts]
        chats = chat_texts(model, prompts)
        settings = [("none", 0.0)] + [("conva", p) for p in p0_grid] + [("caa", c) for c in coef_grid]
        answers = {}
        for method, s in settings:
            spec = SteeringSpec("conva-nogate" if method == "conva" else method, vector=vec,
                                p0=s if method == "conva" else None, coef=s if method == "caa" else None, value=name)
            out = generate(model, prompts, spec, max_new_tokens=max_new_tokens, batch_size=len(prompts))
            answers[(method, s)] = list(out.texts)
        ppl = {k: answer_perplexity(model, chats, a) for k, a in answers.items()}
        base = answers[("none", 0.0)]
        calibration = calibrate_fluency(list(ppl[("none", 0.0)]), [repetition_ratio(a) for a in base])
        scorer = judge_factory(name) if judge_factory is not None else load_judge(judge, name)
        value_rows = []
        for method, s in settings:
            prob = np.asarray(scorer.probability(answers[(method, s)], prompts))
            flags = fluency_flags(answers[(method, s)], ppl[(method, s)], calibration)
            value_rows.append(SweepRow(name, method, s, float(np.mean(prob >= scorer.threshold)),
                                       float(np.mean(flags)), len(prompts), float(np.mean(prob))))
        rows += value_rows
        base_fluency = value_rows[0].fluency
        chosen[name] = SteeringDefaults(
            p0=_choose([r for r in value_rows if r.method == "conva"], base_fluency, min_fluency),
            coef=_choose([r for r in value_rows if r.method == "caa"], base_fluency, min_fluency))
    return rows, chosen
