"""The comparison suite: every value x method x condition, judged, plus capability with and without steering.

Writes ``results.csv`` (``value,method,condition,csr,fluency,n``), ``capability.csv``
(``method,benchmark,score,n``; only when ``cfg.mmlu`` or ``cfg.wikitext`` is given), ``summary.md``
and ``judge.json`` (which judge gave the CSR, with its thresholds). The judge is ``cfg.judge``
(:func:`workbench.evaluation.judges.load_judge`; default ``touche``, trained on labels nobody here
wrote). Generations are cached per value, method and
condition under ``out/generations/``, and MMLU predictions per method and value slice under
``out/mmlu/``, so an interrupted run resumes where it stopped. The parts: the configuration and result
(``suite_config``), each value's prompts, vectors and gate (``suite_inputs``), the answer cache
(``answer_cache``) and the capability rows (``suite_capability``), all in ``workbench.evaluation``.

Example:
    >>> cfg = SuiteConfig(values=("power",), methods=("none", "conva"), out=Path("out/eval"), limit=4)
    >>> run_suite(model, cfg)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.evaluation.answer_cache import generate_cached
from workbench.evaluation.judges import DEFAULT_JUDGE, JUDGE_NAMES, load_judge
from workbench.evaluation.metrics import calibrate_fluency, control_success_rate, fluency_flags, repetition_ratio
from workbench.evaluation.suite_capability import capability_rows
from workbench.evaluation.suite_config import (
    CAPABILITY_COLUMNS,
    CONDITIONS,
    RESULT_COLUMNS,
    SuiteConfig,
    SuiteResult,
)
from workbench.evaluation.suite_inputs import Artefacts, value_artefacts, value_prompts
from workbench.io import atomic_write_text
from workbench.methods import SUITE_METHODS, get_method
from workbench.model import fingerprint
from workbench.tables import write_csv

__all__ = ["CONDITIONS", "SUITE_METHODS", "SuiteConfig", "SuiteResult", "run_suite"]


def _summary(results: Sequence[tuple[str, str, str, float, float, int]], capability: Sequence[tuple[str, str, float, int]],
             methods: Sequence[str], judge_meta: dict[str, Any] | None = None) -> str:
    """The markdown summary: the judges, CSR / fluency per value and method for each condition, the capability rows."""
    lines = ["# Evaluation summary", ""]
    if judge_meta:
        model = f" ({judge_meta['judge_model']})" if judge_meta.get("judge_model") else ""
        lines += [f"Value judge: `{judge_meta['judge']}`{model}; fluency: {judge_meta['fluency']}.", ""]
    for condition in dict.fromkeys(r[2] for r in results):
        lines += [f"## Control success rate / fluency — {condition}", "",
                  "| value | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
        by = {(r[0], r[1]): r for r in results if r[2] == condition}
        for value in dict.fromkeys(r[0] for r in results):
            cells = [f"{by[(value, m)][3]:.2f} / {by[(value, m)][4]:.2f}" if (value, m) in by else "-" for m in methods]
            lines.append(f"| {value} | " + " | ".join(cells) + " |")
        means = [np.mean([r[3] for r in results if r[1] == m and r[2] == condition]) for m in methods]
        flu = [np.mean([r[4] for r in results if r[1] == m and r[2] == condition]) for m in methods]
        lines.append("| **mean** | " + " | ".join(f"**{a:.2f} / {b:.2f}**" for a, b in zip(means, flu, strict=True)) + " |")
        lines.append("")
    if capability:
        lines += ["## Capability", "", "| method | benchmark | score | n |", "|---|---|---|---|"]
        lines += [f"| {m} | {b} | {s:.4f} | {n} |" for m, b, s, n in capability]
    return "\n".join(lines) + "\n"


def judge_name(cfg: SuiteConfig) -> str:
    """The judge a config uses: ``cfg.judge``, else ``url`` when an endpoint is given, else ``touche``."""
    name = cfg.judge or ("url" if cfg.judge_url else DEFAULT_JUDGE)
    if name not in JUDGE_NAMES:
        raise ValueError(f"Unknown judge {name!r}; use one of {', '.join(JUDGE_NAMES)}.")
    return name


def _judge_factory(cfg: SuiteConfig) -> Callable[[str], Any]:
    name = judge_name(cfg)
    if name == "url":
        return lambda v: load_judge("url", v, cfg.judge_model, url=cfg.judge_url, cache=cfg.out / "judge_cache")
    if name == "llm":
        from workbench.model import load_model

        judge_model = load_model(cfg.judge_model) if cfg.judge_model else None
        return lambda v: load_judge("llm", v, judge_model)
    return lambda v: load_judge(name, v)


def run_suite(model: Any, cfg: SuiteConfig, judge_factory: Callable[[str], Any] | None = None) -> SuiteResult:
    """Run the whole comparison and write results.csv, summary.md, judge.json (and capability.csv) into ``cfg.out``.

    ``judge_factory(value)`` builds the value judge (default: ``load_judge(cfg.judge, value)``). With
    the ``url`` judge, fluency is the endpoint's verdict too; otherwise perplexity and repetition.
    """
    bad = [m for m in cfg.methods if m not in SUITE_METHODS]
    if bad:
        raise ValueError(f"Unknown methods {bad}; use any of {', '.join(SUITE_METHODS)}.")
    name = judge_name(cfg) if judge_factory is None else "custom"
    factory = _judge_factory(cfg) if judge_factory is None else judge_factory
    fp = fingerprint(model)
    artefacts: dict[str, Artefacts] = {}
    records: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    prompts_by_value: dict[str, list[str]] = {}
    jobs = [(v, m, c) for v in cfg.values for m in cfg.methods for c in cfg.conditions]
    # conva reads the answers it shares with none and conva-nogate off their cache, so it runs after them.
    ordered = sorted(jobs, key=lambda job: get_method(job[1], SUITE_METHODS).ungated is not None)
    for value, method, condition in tqdm(ordered, desc="suite", disable=not cfg.progress):
        if value not in artefacts:
            artefacts[value] = value_artefacts(model, cfg, value)
            prompts_by_value[value] = value_prompts(cfg, value)
        vec, naive, gate = artefacts[value]
        records[(value, method, condition)] = generate_cached(model, cfg, fp, value, method, condition,
                                                              prompts_by_value[value], vec, naive, gate)
    # Fluency thresholds come from the unsteered answers (all values, plain condition).
    base = [r for (v, m, c), recs in records.items() if m == "none" and c == "plain" for r in recs] or \
        [r for recs in records.values() for r in recs]
    calibration = calibrate_fluency([r["perplexity"] if r["perplexity"] is not None else np.inf for r in base],
                                    [repetition_ratio(r["answer"]) for r in base])
    judges: dict[str, Any] = {}
    fluency_judge = load_judge("url", None, cfg.judge_model, rubric="fluency", url=cfg.judge_url,
                               cache=cfg.out / "judge_cache") if name == "url" else None
    results = []
    for value, method, condition in jobs:
        recs = records[(value, method, condition)]
        answers = [r["answer"] for r in recs]
        if value not in judges:
            judges[value] = factory(value)
        verdicts = list(judges[value].judge(answers, [r["prompt"] for r in recs]))
        if fluency_judge is not None:
            fluent = list(fluency_judge.judge(answers))
        else:
            ppl = [r["perplexity"] if r["perplexity"] is not None else np.inf for r in recs]
            fluent = list(fluency_flags(answers, ppl, calibration))
        results.append((value, method, condition, control_success_rate(verdicts), float(np.mean(fluent)), len(recs)))
    capability = capability_rows(model, cfg, fp, artefacts)
    write_csv(cfg.out / "results.csv", RESULT_COLUMNS, results)
    if cfg.mmlu is not None or cfg.wikitext is not None:  # otherwise an earlier capability table stays
        write_csv(cfg.out / "capability.csv", CAPABILITY_COLUMNS, capability)
    judge_meta = {"judge": name, "judge_model": cfg.judge_model if name in ("url", "llm") else None,
                  "fluency": "url judge" if name == "url" else "perplexity and repetition",
                  "thresholds": {v: float(j.threshold) for v, j in judges.items() if hasattr(j, "threshold")}}
    summary = _summary(results, capability, cfg.methods, judge_meta)
    atomic_write_text(cfg.out / "summary.md", summary)
    atomic_write_text(cfg.out / "judge.json", json.dumps(judge_meta, indent=2) + "\n")
    atomic_write_text(cfg.out / "fluency_calibration.json", json.dumps(calibration.__dict__) + "\n")
    return SuiteResult(tuple(results), tuple(capability), summary)
