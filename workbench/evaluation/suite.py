"""The comparison suite: every value x method x condition, judged, plus capability with and without steering.

Writes ``results.csv`` (``value,method,condition,csr,fluency,n``), ``capability.csv``
(``method,benchmark,score,n``), ``summary.md`` and ``judge.json`` (which judge gave the CSR, with its
thresholds). The judge is ``cfg.judge`` (:func:`workbench.evaluation.judges.load_judge`; default
``touche``, trained on labels nobody here wrote). Generations are cached per value, method and
condition under ``out/generations/``, and MMLU predictions per method and value slice under
``out/mmlu/``, so an interrupted run resumes where it stopped.

Example:
    >>> cfg = SuiteConfig(values=("power",), methods=("none", "conva"), out=Path("out/eval"), limit=4)
    >>> run_suite(model, cfg)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from workbench.constants import MODES
from workbench.datasets import load_pairs
from workbench.evaluation.capability import load_mmlu, mmlu_predictions, wikitext_perplexity
from workbench.evaluation.judges import DEFAULT_JUDGE, JUDGE_NAMES, load_judge
from workbench.evaluation.metrics import (
    answer_perplexity,
    calibrate_fluency,
    control_success_rate,
    fluency_flags,
    repetition_ratio,
)
from workbench.gate import Gate, load_gate, save_gate, train_gate
from workbench.generation import chat_texts, generate, high_value_prompt
from workbench.io import atomic_write_text, text_hash
from workbench.methods import SUITE_METHODS, get_method
from workbench.model import fingerprint
from workbench.probes import FALLBACK_TOP, probe_value
from workbench.prompts import load_value_prompts, read_prompts
from workbench.steering import SteeringSpec, steer
from workbench.tables import write_csv
from workbench.vectors import ValueVector, load_vector, save_vector

__all__ = ["CONDITIONS", "SUITE_METHODS", "SuiteConfig", "SuiteResult", "run_suite"]

CONDITIONS = ("plain", "negative-prompt")


@dataclass(frozen=True)
class SuiteConfig:
    values: tuple[str, ...]
    methods: tuple[str, ...] = SUITE_METHODS
    out: Path = Path("out/eval")
    vectors: Path | None = None  # folder of controlled vectors (probed and saved here when absent)
    prompts: Path | None = None  # folder with <value>.csv/.jsonl/.txt; default: shipped held-out prompts
    mmlu: Path | None = None
    wikitext: Path | None = None
    mmlu_n: int = 1000
    mmlu_shots: int = 5
    limit: int | None = None
    p0: float | None = None  # None: the per-value default from the sweep (workbench.sweep)
    coef: float | None = None  # None: likewise
    defaults: Path | None = None  # a steering-defaults file from `workbench sweep`; None: the shipped one
    mode: str = MODES[0]  # the SteeringSpec default
    exclude_last: int = 5
    max_new_tokens: int = 48
    batch_size: int = 8
    seed: int = 0
    judge: str | None = None  # one of JUDGE_NAMES; None: "url" when judge_url is set, else "touche"
    judge_url: str | None = None
    judge_model: str | None = None  # url: the endpoint's model name; llm: a load_model source (default: research model)
    progress: bool = True
    conditions: tuple[str, ...] = CONDITIONS  # plain, and under the negative system prompt

    def __post_init__(self) -> None:
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"Unknown or no conditions {bad}; use any of {', '.join(CONDITIONS)}.")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be a positive number of prompts per value (or None for all), got {self.limit!r}.")


@dataclass(frozen=True)
class SuiteResult:
    results: tuple[tuple[str, str, str, float, float, int], ...]
    capability: tuple[tuple[str, str, float, int], ...]
    summary: str = field(repr=False, default="")

    def to_frame(self, table: str = "results") -> Any:
        """``results`` (one row per value x method x condition) or ``capability`` as a pandas DataFrame.

        Example:
            >>> result.to_frame().pivot_table(index="value", columns="method", values="csr")
        """
        from workbench.tables import require_pandas

        tables = {"results": (self.results, RESULT_COLUMNS), "capability": (self.capability, CAPABILITY_COLUMNS)}
        if table not in tables:
            raise ValueError(f"Unknown table {table!r}; use 'results' or 'capability'.")
        rows, columns = tables[table]
        return require_pandas().DataFrame(list(rows), columns=list(columns))


RESULT_COLUMNS = ("value", "method", "condition", "csr", "fluency", "n")
CAPABILITY_COLUMNS = ("method", "benchmark", "score", "n")


def _spec(model: Any, cfg: SuiteConfig, value: str, method: str, vec: ValueVector, naive: ValueVector | None,
          gate: Gate | None) -> SteeringSpec:
    """The resolved spec a suite method steers with: the configured P0/coef/mode, else the value's defaults."""
    kind = get_method(method, SUITE_METHODS)
    vector = None if kind.name == "none" else naive if kind.dataset == "naive" else vec
    return SteeringSpec(kind.base.name, vector=vector, gate=gate if kind.uses_gate else None, p0=cfg.p0,
                        coef=cfg.coef, mode=cfg.mode, value=value, defaults=cfg.defaults).resolve(model)


def _prompts_for(cfg: SuiteConfig, value: str) -> list[str]:
    if cfg.prompts is None:
        prompts = load_value_prompts(value)[1]
    else:
        files = [cfg.prompts / f"{value}{ext}" for ext in (".csv", ".jsonl", ".txt")]
        found = [f for f in files if f.is_file()]
        if not found:
            raise FileNotFoundError(f"No prompt file for {value!r} in {cfg.prompts} (expected {value}.csv, "
                                    ".jsonl or .txt).")
        prompts = read_prompts(found[0])
    return prompts[: cfg.limit] if cfg.limit else prompts


def _artefacts(model: Any, cfg: SuiteConfig, value: str) -> tuple[ValueVector, ValueVector | None, Gate]:
    """The value's controlled vector, its naive vector (only when ``conva-naive`` runs) and its gate."""
    folder = cfg.vectors or cfg.out / "vectors"
    sources = [("controlled", folder)] + ([("naive", cfg.out / "vectors_naive")] if "conva-naive" in cfg.methods else [])
    vectors: list[ValueVector | None] = []
    for dataset, base in sources:
        path = base / f"{value}.safetensors"
        if path.is_file():
            vectors.append(load_vector(path, model=model))
        else:
            vec = probe_value(model, load_pairs(value, dataset), dataset=dataset, fallback_top=FALLBACK_TOP, seed=cfg.seed,
                              exclude_last=cfg.exclude_last, progress=False)
            save_vector(vec, path)
            vectors.append(vec)
    gate_path = cfg.out / "gates" / f"{value}.safetensors"
    if gate_path.is_file():
        gate = load_gate(gate_path, model=model)
    else:
        gate = train_gate(model, value, kind="residual", seed=cfg.seed)
        save_gate(gate, gate_path)
    return vectors[0], (vectors[1] if len(vectors) > 1 else None), gate


def _vector_key(vec: ValueVector | None) -> str:
    """What identifies a vector's steering: its layers and a digest of its weights and mean difference."""
    if vec is None:
        return "-"
    digest = hashlib.sha256()
    for t in (vec.weight, vec.bias, vec.mean_diff):
        digest.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return f"{list(vec.layers)} {digest.hexdigest()[:16]}"


def _generate_cached(model: Any, cfg: SuiteConfig, fp: str, value: str, method: str, condition: str,
                     prompts: list[str], vec: ValueVector, naive: ValueVector | None, gate: Gate
                     ) -> list[dict[str, Any]]:
    path = cfg.out / "generations" / value / f"{method}__{condition}.jsonl"
    spec = _spec(model, cfg, value, method, vec, naive, gate)
    # Only what a method uses is in its key: a new P0 or vector does not regenerate the baselines.
    if spec.kind.shift is None:
        used: list[str] = []
    else:
        used = [str(spec.coef) if spec.kind.shift == "caa" else f"{spec.p0} {spec.mode}", _vector_key(spec.vector)]
    settings = [fp, value, method, condition, *used, str(cfg.max_new_tokens), str(cfg.seed)]
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                if isinstance(rec.get("answer"), str):
                    done[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                continue  # a damaged line (e.g. from a killed run, or without an answer) is regenerated
    keys = [text_hash([*settings, p]) for p in prompts]
    todo = [i for i, k in enumerate(keys) if k not in done]
    system = high_value_prompt(value, "low") if condition == "negative-prompt" else None
    for start in range(0, len(todo), cfg.batch_size):
        idx = todo[start : start + cfg.batch_size]
        batch = [prompts[i] for i in idx]
        out = generate(model, batch, spec, system_prompt=system, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                       batch_size=cfg.batch_size)
        ppl = answer_perplexity(model, chat_texts(model, batch, system), list(out.texts))
        for j, i in enumerate(idx):
            done[keys[i]] = {"key": keys[i], "prompt": prompts[i], "answer": out.texts[j],
                             "fired": out.audits[j].fired, "gate_score": out.audits[j].gate_score,
                             "perplexity": float(ppl[j]) if np.isfinite(ppl[j]) else None}
        atomic_write_text(path, "".join(json.dumps(done[k]) + "\n" for k in keys if k in done))
    return [done[k] for k in keys]


def _cached_predictions(cfg: SuiteConfig, name: str, key: Sequence[str], compute: Callable[[], np.ndarray]
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


def _capability(model: Any, cfg: SuiteConfig, fp: str,
                artefacts: dict[str, tuple[ValueVector, ValueVector | None, Gate]]) -> list[tuple[str, str, float, int]]:
    rows: list[tuple[str, str, float, int]] = []
    methods = [m for m in ("none", "conva", "conva-nogate") if m in cfg.methods]
    values = list(artefacts)

    def steering_for(method: str, value: str, texts: Sequence[str]) -> contextlib.AbstractContextManager[Any]:
        vec, _, gate = artefacts[value]
        if method == "none":
            return contextlib.nullcontext()
        spec = _spec(model, cfg, value, method, vec, None, gate)
        opened = gate.is_open(texts, model, g0=spec.g0) if spec.kind.uses_gate else True
        return steer(model, spec, gate_open=opened)

    if cfg.mmlu is not None:
        items = load_mmlu(cfg.mmlu, n=cfg.mmlu_n, k_shot=cfg.mmlu_shots, seed=cfg.seed)
        answers = np.array([it.answer for it in items])
        slices = np.array_split(np.arange(len(items)), len(values))  # each value steers its own slice
        benchmark = f"mmlu_{cfg.mmlu_shots}shot"
        tag = f"{len(items)}x{benchmark}"
        base = _cached_predictions(cfg, f"none__{tag}", [fp, *(it.prompt for it in items)],
                                   lambda: mmlu_predictions(model, items, progress=cfg.progress))
        for method in methods:
            preds, n_open = base.copy(), 0
            steered = [] if method == "none" else zip(values, slices, strict=True)
            for value, idx in steered:
                vec, _, gate = artefacts[value]
                spec = _spec(model, cfg, value, method, vec, None, gate)
                if spec.kind.uses_gate:
                    # A closed gate leaves the forward pass bit-identical (tests/test_steering.py), so only
                    # the questions that open it are run again; the others keep the unsteered prediction.
                    idx = idx[gate.is_open([items[i].question for i in idx], model, g0=spec.g0).numpy()]
                n_open += len(idx)
                if len(idx):
                    chosen = [items[i] for i in idx]
                    preds[idx] = _cached_predictions(
                        cfg, f"{method}__{value}__{tag}",
                        [fp, str(spec.p0), spec.mode, _vector_key(vec), *(it.prompt for it in chosen)],
                        lambda c=chosen, sp=spec: mmlu_predictions(
                            model, c, progress=cfg.progress, steering=lambda _: steer(model, sp, gate_open=True)))
            rows.append((method, benchmark, float(np.mean(preds == answers)), len(items)))
            if method == "conva":
                rows.append((method, f"{benchmark}_gate_open_share", n_open / len(items), len(items)))
    if cfg.wikitext is not None:
        text = cfg.wikitext.read_text(encoding="utf-8")[:4000]
        for method in methods:
            ppls = [wikitext_perplexity(model, cfg.wikitext, n_windows=2,
                                        steering=lambda v=value, m=method: steering_for(m, v, [text]))
                    for value in values]
            rows.append((method, "wikitext_ppl", float(np.mean(ppls)), 2 * len(values)))
    return rows


def _summary(results: Sequence[tuple[str, str, str, float, float, int]], capability: Sequence[tuple[str, str, float, int]],
             methods: Sequence[str], judge_meta: dict[str, Any] | None = None) -> str:
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
    """Run the whole comparison and write results.csv, capability.csv, summary.md and judge.json into ``cfg.out``.

    ``judge_factory(value)`` builds the value judge (default: ``load_judge(cfg.judge, value)``). With
    the ``url`` judge, fluency is the endpoint's verdict too; otherwise perplexity and repetition.
    """
    bad = [m for m in cfg.methods if m not in SUITE_METHODS]
    if bad:
        raise ValueError(f"Unknown methods {bad}; use any of {', '.join(SUITE_METHODS)}.")
    name = judge_name(cfg) if judge_factory is None else "custom"
    factory = _judge_factory(cfg) if judge_factory is None else judge_factory
    fp = fingerprint(model)
    artefacts: dict[str, tuple[ValueVector, ValueVector | None, Gate]] = {}
    records: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    prompts_by_value: dict[str, list[str]] = {}
    jobs = [(v, m, c) for v in cfg.values for m in cfg.methods for c in cfg.conditions]
    for value, method, condition in tqdm(jobs, desc="suite", disable=not cfg.progress):
        if value not in artefacts:
            artefacts[value] = _artefacts(model, cfg, value)
            prompts_by_value[value] = _prompts_for(cfg, value)
        vec, naive, gate = artefacts[value]
        records[(value, method, condition)] = _generate_cached(model, cfg, fp, value, method, condition,
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
    for (value, method, condition), recs in records.items():
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
    capability = _capability(model, cfg, fp, artefacts)
    write_csv(cfg.out / "results.csv", RESULT_COLUMNS, results)
    write_csv(cfg.out / "capability.csv", CAPABILITY_COLUMNS, capability)
    judge_meta = {"judge": name, "judge_model": cfg.judge_model if name in ("url", "llm") else None,
                  "fluency": "url judge" if name == "url" else "perplexity and repetition",
                  "thresholds": {v: float(j.threshold) for v, j in judges.items() if hasattr(j, "threshold")}}
    summary = _summary(results, capability, cfg.methods, judge_meta)
    atomic_write_text(cfg.out / "summary.md", summary)
    atomic_write_text(cfg.out / "judge.json", json.dumps(judge_meta, indent=2) + "\n")
    atomic_write_text(cfg.out / "fluency_calibration.json", json.dumps(calibration.__dict__) + "\n")
    return SuiteResult(tuple(results), tuple(capability), summary)
