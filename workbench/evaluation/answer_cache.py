"""The suite's answers, cached per value, method and condition under ``out/generations/`` so a run resumes.

Each answer is keyed by a hash of the model fingerprint, the value, method and condition, the
settings the method uses (P0 and mode, or the CAA coefficient, :func:`vector_key`, and for a gated
method :func:`gate_key`), the token budget, the seed and the prompt; a change to any of them
regenerates only the answers it touches.

Example:
    >>> records = generate_cached(model, cfg, fingerprint(model), "power", "conva", "plain", prompts, vec, None, gate)
    >>> records[0]["answer"], records[0]["fired"]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from workbench.evaluation.metrics import answer_perplexity
from workbench.evaluation.suite_config import SuiteConfig
from workbench.evaluation.suite_inputs import method_spec
from workbench.gate import Gate
from workbench.generation import chat_texts, gate_scores, generate, high_value_prompt
from workbench.io import atomic_write_text, text_hash
from workbench.methods import SUITE_METHODS, get_method
from workbench.steering import SteeringSpec
from workbench.vectors import ValueVector

__all__ = ["answers_file", "gate_key", "generate_cached", "read_answers", "vector_key"]


def vector_key(vec: ValueVector | None) -> str:
    """What identifies a vector's steering: its layers and a digest of its weights and mean difference."""
    if vec is None:
        return "-"
    digest = hashlib.sha256()
    for t in (vec.weight, vec.bias, vec.mean_diff):
        digest.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return f"{list(vec.layers)} {digest.hexdigest()[:16]}"


def gate_key(gate: Gate, g0: float) -> str:
    """What identifies a gate's decisions: its kind, layer, threshold and a digest of its weights."""
    digest = hashlib.sha256(gate.weight.detach().cpu().float().contiguous().numpy().tobytes())
    return f"{gate.kind} {gate.layer} {g0} {gate.bias} {digest.hexdigest()[:16]}"


def _settings(model: Any, cfg: SuiteConfig, fp: str, value: str, method: str, condition: str, vec: ValueVector,
              naive: ValueVector | None, gate: Gate) -> tuple[SteeringSpec, list[str]]:
    """The method's resolved spec and what keys its answers: only what it uses, so a new P0 or vector
    does not regenerate the baselines."""
    spec = method_spec(model, cfg, value, method, vec, naive, gate)
    if spec.kind.shift is None:
        used: list[str] = []
    else:
        used = [str(spec.coef) if spec.kind.shift == "caa" else f"{spec.p0} {spec.mode}", vector_key(spec.vector)]
    if spec.kind.uses_gate:
        used.append(gate_key(spec.gate, spec.g0))
    return spec, [fp, value, method, condition, *used, str(cfg.max_new_tokens), str(cfg.seed)]


def answers_file(out: Path, value: str, method: str, condition: str) -> Path:
    """Where the suite caches one value's answers for a method and condition, under results folder ``out``."""
    return Path(out) / "generations" / value / f"{method}__{condition}.jsonl"


def read_answers(path: Path) -> dict[str, dict[str, Any]]:
    """The cached records of one file by key; a damaged line (e.g. from a killed run) is left out."""
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
                if isinstance(rec.get("answer"), str):
                    done[rec["key"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                continue
    return done


def _from_gate(model: Any, cfg: SuiteConfig, fp: str, value: str, spec: SteeringSpec, ungated: str, condition: str,
               prompts: list[str], vec: ValueVector, naive: ValueVector | None, gate: Gate
               ) -> dict[int, dict[str, Any]]:
    """Gated answers read off the cache: the unsteered answer where the gate stays closed, the ungated
    method's answer where it opens (what :func:`generate` does per prompt), for the prompts cached there."""
    sources = {}
    for is_open, name in ((False, "none"), (True, ungated)):
        _, settings = _settings(model, cfg, fp, value, name, condition, vec, naive, gate)
        sources[is_open] = (name, settings, read_answers(answers_file(cfg.out, value, name, condition)))
    found = {}
    for i, score in enumerate(gate_scores(model, spec.gate, prompts).tolist()):
        name, settings, records = sources[score > spec.g0]
        rec = records.get(text_hash([*settings, prompts[i]]))
        if rec is not None:
            found[i] = {**rec, "fired": score > spec.g0, "gate_score": score, "answer_of": name}
    return found


def generate_cached(model: Any, cfg: SuiteConfig, fp: str, value: str, method: str, condition: str,
                    prompts: list[str], vec: ValueVector, naive: ValueVector | None, gate: Gate
                    ) -> list[dict[str, Any]]:
    """One record per prompt (prompt, answer, gate audit, answer perplexity): cached ones read, the rest generated.

    A gated method with an ungated twin (``conva``) first takes each prompt's answer from the cached
    ``none`` or ``conva-nogate`` answers, by its gate (such records name their source in ``answer_of``).
    The cache file is rewritten after each batch, so an interrupted run keeps what it generated.
    """
    path = answers_file(cfg.out, value, method, condition)
    spec, settings = _settings(model, cfg, fp, value, method, condition, vec, naive, gate)
    done = read_answers(path)
    keys = [text_hash([*settings, p]) for p in prompts]
    todo = [i for i, k in enumerate(keys) if k not in done]
    # The suite method's own twin, not its base's: conva-naive steers as conva but with another vector.
    ungated = get_method(method, SUITE_METHODS).ungated
    if todo and ungated:
        found = _from_gate(model, cfg, fp, value, spec, ungated, condition, [prompts[i] for i in todo], vec, naive, gate)
        for j, rec in found.items():
            done[keys[todo[j]]] = {**rec, "key": keys[todo[j]]}
        todo = [i for i in todo if keys[i] not in done]
        if found:
            atomic_write_text(path, "".join(json.dumps(done[k]) + "\n" for k in keys if k in done))
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

