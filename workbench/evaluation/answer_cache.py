"""The suite's answers, cached per value, method and condition under ``out/generations/`` so a run resumes.

Each answer is keyed by a hash of the model fingerprint, the value, method and condition, the
settings the method uses (P0 and mode, or the CAA coefficient, and :func:`vector_key`), the token
budget, the seed and the prompt; a change to any of them regenerates only the answers it touches.

Example:
    >>> records = generate_cached(model, cfg, fingerprint(model), "power", "conva", "plain", prompts, vec, None, gate)
    >>> records[0]["answer"], records[0]["fired"]
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from workbench.evaluation.metrics import answer_perplexity
from workbench.evaluation.suite_config import SuiteConfig
from workbench.evaluation.suite_inputs import method_spec
from workbench.gate import Gate
from workbench.generation import chat_texts, generate, high_value_prompt
from workbench.io import atomic_write_text, text_hash
from workbench.vectors import ValueVector

__all__ = ["generate_cached", "vector_key"]


def vector_key(vec: ValueVector | None) -> str:
    """What identifies a vector's steering: its layers and a digest of its weights and mean difference."""
    if vec is None:
        return "-"
    digest = hashlib.sha256()
    for t in (vec.weight, vec.bias, vec.mean_diff):
        digest.update(t.detach().cpu().float().contiguous().numpy().tobytes())
    return f"{list(vec.layers)} {digest.hexdigest()[:16]}"


def generate_cached(model: Any, cfg: SuiteConfig, fp: str, value: str, method: str, condition: str,
                    prompts: list[str], vec: ValueVector, naive: ValueVector | None, gate: Gate
                    ) -> list[dict[str, Any]]:
    """One record per prompt (prompt, answer, gate audit, answer perplexity): cached ones read, the rest generated.

    The cache file is rewritten after each batch, so an interrupted run keeps what it generated.
    """
    path = cfg.out / "generations" / value / f"{method}__{condition}.jsonl"
    spec = method_spec(model, cfg, value, method, vec, naive, gate)
    # Only what a method uses is in its key: a new P0 or vector does not regenerate the baselines.
    if spec.kind.shift is None:
        used: list[str] = []
    else:
        used = [str(spec.coef) if spec.kind.shift == "caa" else f"{spec.p0} {spec.mode}", vector_key(spec.vector)]
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

