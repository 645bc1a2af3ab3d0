"""The main job after the probes: gates saved for reuse, one steered example, a small evaluation.

``workbench demo --out OUT`` runs the audit and the probes, then :func:`finish_demo`:

1. ``OUT/gates/<value>.safetensors`` — the gate of each value (the default kind), trained once and loaded by
   ``workbench steer``, the widget and the notebooks instead of being retrained;
2. ``OUT/steer.jsonl`` — :data:`EXAMPLE` steered with ConVA behind its gate (the record
   ``workbench steer --json`` writes), drawn as the steering-audit figure;
3. ``OUT/results.csv``, ``OUT/summary.md`` — the comparison suite on :data:`EVAL_PROMPTS` held-out
   prompts per value, answers of :data:`EVAL_TOKENS` tokens, methods :data:`EVAL_METHODS`, judged by
   the independent Touché23 judge; the summary adds 95% Wilson intervals that say how little n prompts show.

Example:
    >>> finish_demo(model, Path("out"), ["achievement", "power"])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.constants import DEFAULT_JUDGE, MAX_NEW_TOKENS
from workbench.progress import spinner
from workbench.stats import wilson_interval

if TYPE_CHECKING:  # torch-free at import: the CLI parser reads this module's defaults
    from workbench.gate import Gate
    from workbench.vectors import ValueVector

__all__ = ["EVAL_METHODS", "EVAL_PROMPTS", "EVAL_TOKENS", "EXAMPLE", "finish_demo", "gate_path", "load_saved_gate",
           "wilson_table", "write_steer_record"]

EVAL_METHODS = ("none", "prompt", "caa", "conva")
EVAL_PROMPTS = 3
EVAL_TOKENS = 24
EXAMPLE_TOKENS = MAX_NEW_TOKENS
# A held-out-style prompt on which the default achievement gate opens (score 0.98, g0 0.5).
EXAMPLE = ("achievement", "My coach says I could win the regional title if I train twice a day. Should I go for it?")


def gate_path(results: str | Path, value: str) -> Path:
    """Where the main job saves the gate of ``value``: ``results/gates/<value>.safetensors``."""
    return Path(results) / "gates" / f"{value}.safetensors"


def load_saved_gate(results: str | Path, value: str, model: Any) -> Gate | None:
    """The gate the main job saved for ``value`` and this model, or None (absent, or made for another model)."""
    from workbench.gate import load_gate
    from workbench.vectors import ArtefactError

    path = gate_path(results, value)
    if not path.is_file():
        return None
    try:
        gate = load_gate(path, model=model)
    except ArtefactError:
        return None
    return gate if gate.value == value else None


def _gates(model: Any, results: Path, values: Sequence[str], progress: bool) -> dict[str, Gate]:
    from workbench.gate import save_gate, train_gate

    gates = {}
    for value in values:
        gate = load_saved_gate(results, value, model)
        if gate is None:
            with spinner(f"training the {value} gate", enabled=progress):
                gate = train_gate(model, value)
            save_gate(gate, gate_path(results, value))
        gates[value] = gate
    return gates


def write_steer_record(model: Any, vector: ValueVector, gate: Gate, prompt: str, path: Path,
                       max_new_tokens: int = EXAMPLE_TOKENS, progress: bool = True) -> dict[str, Any]:
    """Answer ``prompt`` unsteered and with ConVA behind ``gate``; write the record as ``workbench steer --json`` does."""
    from workbench.generation import generate
    from workbench.io import atomic_write_text
    from workbench.model import fingerprint
    from workbench.steering import SteeringSpec

    spec = SteeringSpec("conva", vector=vector, gate=gate).resolve(model)
    with spinner(f"steering one {vector.value} prompt ({max_new_tokens} tokens, unsteered and steered)",
                 enabled=progress):
        plain = generate(model, [prompt], method="none", max_new_tokens=max_new_tokens)
        steered = generate(model, [prompt], spec, max_new_tokens=max_new_tokens)
    audit = steered.audits[0]
    record = {"prompt": prompt, "unsteered": plain.texts[0], "steered": steered.texts[0], "value": vector.value,
              "method": spec.method, "mode": spec.mode, "p0": spec.p0, "coef": None, "g0": spec.g0,
              "steering_layers": list(spec.layers), "model_name": getattr(model.cfg, "model_name", None),
              "model_fingerprint": fingerprint(model), "gate_score": audit.gate_score, "fired": audit.fired,
              "note": None, "layers": list(audit.layers)}
    atomic_write_text(path, json.dumps(record) + "\n")
    return record


def wilson_table(rows: Sequence[Sequence[Any]], condition: str = "plain") -> str:
    """Markdown: CSR per value and method with its 95% Wilson interval and n (rows as in ``results.csv``)."""
    rows = [r for r in rows if r[2] == condition]
    methods = list(dict.fromkeys(str(r[1]) for r in rows))
    by = {(str(r[0]), str(r[1])): r for r in rows}
    lines = ["| value | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]

    def cell(csr: float, n: int) -> str:
        lo, hi = wilson_interval(float(csr), int(n))
        return f"{float(csr):.2f} [{lo:.2f}, {hi:.2f}] (n={int(n)})"

    for value in dict.fromkeys(str(r[0]) for r in rows):
        lines.append(f"| {value} | " + " | ".join(cell(by[(value, m)][3], by[(value, m)][5]) if (value, m) in by
                                                   else "-" for m in methods) + " |")
    pooled = []
    for m in methods:
        cells = [r for r in rows if str(r[1]) == m]
        n = sum(int(r[5]) for r in cells)
        hits = sum(round(float(r[3]) * int(r[5])) for r in cells)
        pooled.append(cell(hits / n, n) if n else "-")
    lines.append("| **all values** | " + " | ".join(pooled) + " |")
    return "\n".join(lines) + "\n"


def _evaluate(model: Any, results: Path, values: Sequence[str], limit: int, max_new_tokens: int,
              methods: Sequence[str], progress: bool) -> None:
    from workbench.evaluation.suite import SuiteConfig, run_suite
    from workbench.io import atomic_write_text

    cfg = SuiteConfig(values=tuple(values), methods=tuple(methods), out=results, limit=limit,
                      max_new_tokens=max_new_tokens, judge=DEFAULT_JUDGE, progress=progress, conditions=("plain",))
    result = run_suite(model, cfg)
    note = (f"## How much this shows\n\nThe main job's evaluation is small: {limit} held-out prompts per value, answers "
            f"of {max_new_tokens} tokens, so each cell is a share of n = {limit} answers and its 95% Wilson interval "
            "is wide; the pooled row (all values) is the one to read. For the paper's numbers run `workbench "
            "reproduce` (all held-out prompts, swept settings, capability).\n\nCSR [95% Wilson interval] (n), plain "
            "condition:\n\n")
    atomic_write_text(results / "summary.md", result.summary + "\n" + note + wilson_table(result.results))


def finish_demo(model: Any, results: Path, values: Sequence[str], vectors: dict[str, ValueVector] | None = None,
                evaluate: bool = True, limit: int = EVAL_PROMPTS, max_new_tokens: int = EVAL_TOKENS,
                methods: Sequence[str] = EVAL_METHODS, progress: bool = True) -> dict[str, Gate]:
    """Gates, the steered example and (``evaluate``) the small evaluation into ``results``; returns the gates.

    ``vectors`` default to ``results/vectors/<value>.safetensors``. The example is steered when its
    value is among ``values``.
    """
    from workbench.prompts import load_value_prompts
    from workbench.vectors import load_vector

    results = Path(results)
    gates = _gates(model, results, values, progress)
    value, prompt = EXAMPLE if EXAMPLE[0] in values else (values[0], load_value_prompts(values[0])[1][0])
    if values:
        vec = (vectors or {}).get(value) or load_vector(results / "vectors" / f"{value}.safetensors", model=model)
        rec = write_steer_record(model, vec, gates[value], prompt, results / "steer.jsonl", progress=progress)
        print(f"steered example ({value}): gate score {rec['gate_score']:.3f} vs g0 {rec['g0']:g}, fired: {rec['fired']}"
              f"\n  unsteered: {rec['unsteered']}\n  steered:   {rec['steered']}")
    if evaluate:
        _evaluate(model, results, values, limit, max_new_tokens, methods, progress)
    return gates
