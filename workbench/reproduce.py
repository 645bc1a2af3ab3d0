"""The paper's experiments in one resumable run: probes, sweep, comparison suite, figures, report.

    workbench reproduce --model embedded:qwen2.5-coder-1.5b-instruct --out out/repro \
        --mmlu ../shared/data/mmlu --wikitext ../shared/data/wikitext2/valid.txt

Stages run in order and each run of a stage is recorded in ``OUT/stages.json`` (when it finished,
how long it took). Every stage resumes: the probes and the sweep save each value as it is done, the
suite caches every generation batch and the capability stage every MMLU slice, so a killed run
started again redoes only the unfinished work, and the report adds up the time of every run. The
suite (answers, CSR) and the capability stage (MMLU, perplexity) are separate stages, so either can
run first: ``--stages capability``. The sweep chooses P0
and the CAA coefficient on the *training* prompts with the independent judge; the suite scores the
*held-out* prompts, so no setting is scored on the prompts that chose it.

Example:
    >>> run_reproduction(model, ReproConfig(out=Path("out/repro"), mmlu=Path("../shared/data/mmlu")))
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.constants import DEFAULT_JUDGE, EXCLUDE_LAST, MAX_NEW_TOKENS, MMLU_SHOTS, SWEEP_NEW_TOKENS, SWEEP_PROMPTS
from workbench.io import atomic_write_text

__all__ = ["CAPABILITY_METHODS", "STAGES", "ReproConfig", "run_reproduction"]

STAGES = ("probe", "sweep", "suite", "capability", "figures", "report")
CAPABILITY_METHODS = ("none", "conva", "conva-nogate")  # the capability claim's three


@dataclass(frozen=True)
class ReproConfig:
    """What :func:`run_reproduction` runs; every field has the paper-sized default."""

    out: Path = Path("out/repro")
    values: tuple[str, ...] = ()  # empty: all 10
    mmlu: Path | None = None
    wikitext: Path | None = None
    mmlu_n: int = 300
    mmlu_shots: int = MMLU_SHOTS
    sweep_prompts: int = SWEEP_PROMPTS
    sweep_tokens: int = SWEEP_NEW_TOKENS
    max_new_tokens: int = MAX_NEW_TOKENS
    limit: int | None = None  # held-out prompts per value (None: all, 23 in the shipped sets)
    judge: str = DEFAULT_JUDGE
    second_judge: str | None = None  # also scores the same answers (results_<judge>.csv); the claims use ``judge``
    exclude_last: int = EXCLUDE_LAST
    figure_formats: tuple[str, ...] = ("html", "png", "pdf")
    model_name: str = ""
    seed: int = 0
    progress: bool = True


def _stages_file(cfg: ReproConfig) -> Path:
    return cfg.out / "stages.json"


def _load_stages(cfg: ReproConfig) -> dict[str, dict[str, Any]]:
    path = _stages_file(cfg)
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        return {}  # a damaged record: every stage is checked again (their outputs are reused)


def _probe(model: Any, cfg: ReproConfig) -> None:
    from tqdm.auto import tqdm

    from workbench.constants import FALLBACK_TOP
    from workbench.datasets import load_pairs
    from workbench.probes import probe_value
    from workbench.tables import write_csv
    from workbench.vectors import load_vector, save_vector

    rows = []
    for dataset, folder in (("controlled", cfg.out / "vectors"), ("naive", cfg.out / "vectors_naive")):
        for value in tqdm(cfg.values, desc=f"probe ({dataset})", disable=not cfg.progress, leave=False):
            path = folder / f"{value}.safetensors"
            if path.is_file():
                vec = load_vector(path, model=model)
            else:
                vec = probe_value(model, load_pairs(value, dataset), dataset=dataset, fallback_top=FALLBACK_TOP, cache=True,
                                  seed=cfg.seed, exclude_last=cfg.exclude_last, progress=False)
                save_vector(vec, path)
            if dataset == "controlled":
                rows += [(value, layer, float(vec.train_acc[layer]), float(vec.test_acc[layer]))
                         for layer in range(vec.n_layers)]
    write_csv(cfg.out / "accuracy.csv", ["value", "layer", "train_acc", "test_acc"], rows)


def _sweep(model: Any, cfg: ReproConfig) -> None:
    from tqdm.auto import tqdm

    from workbench.defaults import SteeringDefaults, save_defaults
    from workbench.sweep import sweep_defaults
    from workbench.tables import write_csv
    from workbench.vectors import load_vector

    parts = cfg.out / "sweep_parts"
    rows, chosen = [], {}
    for value in tqdm(cfg.values, desc="sweep", disable=not cfg.progress, leave=False):
        part = parts / f"{value}.json"
        if not part.is_file():
            vec = load_vector(cfg.out / "vectors" / f"{value}.safetensors", model=model)
            value_rows, picked = sweep_defaults(model, {value: vec}, n_prompts=cfg.sweep_prompts,
                                                max_new_tokens=cfg.sweep_tokens, judge=cfg.judge, progress=False)
            body = {"rows": [r.__dict__ for r in value_rows], "chosen": picked[value].__dict__}
            atomic_write_text(part, json.dumps(body) + "\n")
        body = json.loads(part.read_text(encoding="utf-8"))
        rows += [tuple(r.values()) for r in body["rows"]]
        chosen[value] = SteeringDefaults(**body["chosen"])
    write_csv(cfg.out / "sweep.csv", ["value", "method", "setting", "csr", "fluency", "n", "score"], rows)
    save_defaults(chosen, cfg.out / "steering_defaults.json",
                  {"model": cfg.model_name, "judge": cfg.judge, "n_prompts": cfg.sweep_prompts,
                   "max_new_tokens": cfg.sweep_tokens, "prompts": "training split"})


def _suite_config(cfg: ReproConfig, **kw: Any) -> Any:
    from workbench.evaluation.suite import SuiteConfig

    kw.setdefault("judge", cfg.judge)
    return SuiteConfig(values=cfg.values, out=cfg.out, vectors=cfg.out / "vectors", mmlu_n=cfg.mmlu_n,
                       mmlu_shots=cfg.mmlu_shots, limit=cfg.limit, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                       exclude_last=cfg.exclude_last, defaults=cfg.out / "steering_defaults.json",
                       progress=cfg.progress, **kw)


def _suite(model: Any, cfg: ReproConfig) -> None:
    from workbench.evaluation.suite import run_suite

    # No MMLU or WikiText here: the capability stage writes capability.csv. A second judge scores the
    # cached answers first (no generation), then the main judge writes results.csv, summary.md, judge.json.
    if cfg.second_judge and cfg.second_judge != cfg.judge:
        run_suite(model, _suite_config(cfg, judge=cfg.second_judge))
        (cfg.out / "results.csv").replace(cfg.out / f"results_{cfg.second_judge}.csv")
    run_suite(model, _suite_config(cfg))


def _capability(model: Any, cfg: ReproConfig) -> None:
    from workbench.evaluation.suite_capability import capability_rows
    from workbench.evaluation.suite_config import CAPABILITY_COLUMNS
    from workbench.evaluation.suite_inputs import value_artefacts
    from workbench.model import fingerprint
    from workbench.tables import write_csv

    if cfg.mmlu is None and cfg.wikitext is None:
        return  # nothing to measure; the report says the capability claim needs --mmlu
    scfg = _suite_config(cfg, methods=CAPABILITY_METHODS, mmlu=cfg.mmlu, wikitext=cfg.wikitext)
    artefacts = {value: value_artefacts(model, scfg, value) for value in cfg.values}
    write_csv(cfg.out / "capability.csv", CAPABILITY_COLUMNS, capability_rows(model, scfg, fingerprint(model), artefacts))


def _figures(model: Any, cfg: ReproConfig) -> None:
    from workbench.figures import write_figures

    write_figures(cfg.out, cfg.out / "figures", formats=cfg.figure_formats)


def _report(model: Any, cfg: ReproConfig) -> None:
    from workbench.report import write_report

    write_report(cfg.out, cfg.model_name, _load_stages(cfg))


_RUNNERS: dict[str, Callable[[Any, ReproConfig], None]] = {
    "probe": _probe, "sweep": _sweep, "suite": _suite, "capability": _capability, "figures": _figures, "report": _report}


def run_reproduction(model: Any, cfg: ReproConfig, stages: tuple[str, ...] = STAGES) -> dict[str, dict[str, Any]]:
    """Run ``stages`` in order, each resuming its own saved work; returns the record of every stage run."""
    from tqdm.auto import tqdm

    from workbench.values import resolve_values

    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"Unknown stages {bad}; use any of {', '.join(STAGES)}.")
    if cfg.mmlu is not None and not (Path(cfg.mmlu) / "test").is_dir():
        raise FileNotFoundError(f"{cfg.mmlu} has no test/ folder: point --mmlu at an MMLU-format folder.")
    if cfg.wikitext is not None and not Path(cfg.wikitext).is_file():
        raise FileNotFoundError(f"{cfg.wikitext} is not a file: point --wikitext at WikiText-2 valid.txt.")
    cfg = replace(cfg, values=tuple(resolve_values(",".join(cfg.values) if cfg.values else "all")))
    cfg.out.mkdir(parents=True, exist_ok=True)
    record = _load_stages(cfg)
    for stage in tqdm(stages, desc="reproduce", disable=not cfg.progress):
        t0 = time.perf_counter()
        _RUNNERS[stage](model, cfg)
        runs = record.setdefault(stage, {"runs": []})["runs"]
        runs.append({"seconds": round(time.perf_counter() - t0, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
        atomic_write_text(_stages_file(cfg), json.dumps(record, indent=2) + "\n")
    return record
