"""What the suite runs each value with: its prompts, its vectors and gate, and each method's spec.

The vectors and the gate are probed or trained once and saved under ``cfg.out`` (or read from
``cfg.vectors``), so a rerun loads them.

Example:
    >>> vec, naive, gate = value_artefacts(model, cfg, "power")
    >>> method_spec(model, cfg, "power", "conva", vec, naive, gate).p0
"""

from __future__ import annotations

from typing import Any

from workbench.datasets import load_pairs
from workbench.evaluation.suite_config import SuiteConfig
from workbench.gate import Gate, load_gate, save_gate, train_gate
from workbench.methods import SUITE_METHODS, get_method
from workbench.probes import FALLBACK_TOP, probe_value
from workbench.prompts import load_value_prompts, read_prompts
from workbench.steering import SteeringSpec
from workbench.vectors import ValueVector, load_vector, save_vector

__all__ = ["Artefacts", "method_spec", "value_artefacts", "value_prompts"]

Artefacts = tuple[ValueVector, ValueVector | None, Gate]  # controlled vector, naive vector (or None), gate


def method_spec(model: Any, cfg: SuiteConfig, value: str, method: str, vec: ValueVector, naive: ValueVector | None,
                gate: Gate | None) -> SteeringSpec:
    """The resolved spec a suite method steers with: the configured P0/coef/mode, else the value's defaults."""
    kind = get_method(method, SUITE_METHODS)
    vector = None if kind.name == "none" else naive if kind.dataset == "naive" else vec
    return SteeringSpec(kind.base.name, vector=vector, gate=gate if kind.uses_gate else None, p0=cfg.p0,
                        coef=cfg.coef, mode=cfg.mode, value=value, defaults=cfg.defaults).resolve(model)


def value_prompts(cfg: SuiteConfig, value: str) -> list[str]:
    """The value's prompts (``cfg.prompts/<value>.csv|.jsonl|.txt``, else the shipped held-out ones), at most ``cfg.limit``."""
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


def value_artefacts(model: Any, cfg: SuiteConfig, value: str) -> Artefacts:
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
        gate = train_gate(model, value, seed=cfg.seed)
        save_gate(gate, gate_path)
    return vectors[0], (vectors[1] if len(vectors) > 1 else None), gate

