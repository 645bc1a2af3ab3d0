"""Does gated ConVA steering move answers toward the value, by measures it did not optimise?

For each value: train a residual gate, report its held-out true/false-trigger rates; generate answers
to held-out value prompts without and with ConVA; score the answers with (a) a value judge (``--judge``,
default ``touche``: trained on Touché23, independent of the pairs the vectors come from; ``pairs`` for
the old pair-trained one) and (b) the value probe at a layer that was not steered, read by the
unsteered model. Held-out unrelated prompts are generated
too, and must come out unchanged (gate closed).

    python -m benchmarks.steering_effect --vectors out/vectors --n 8 --out out/steering_effect.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

from workbench.activations import extract
from workbench.constants import JUDGE_NAMES
from workbench.defaults import steering_defaults
from workbench.evaluation.judges import load_judge
from workbench.gate import evaluate_gate, train_gate
from workbench.generation import generate
from workbench.io import atomic_write_text
from workbench.model import load_model
from workbench.prompts import load_unrelated_prompts, load_value_prompts
from workbench.steering import MODES
from workbench.values import resolve_values
from workbench.vectors import load_vector


def _paired_p(after: np.ndarray, before: np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value over the prompts whose score changed (None if none did)."""
    diff = after - before
    diff = diff[np.abs(diff) > 1e-9]
    return float(wilcoxon(diff).pvalue) if len(diff) else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--values", default="all")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--p0", type=float, default=None, help="default: the per-value swept P0")
    ap.add_argument("--mode", choices=MODES, default="prompt-once", help="ConVA (prompt-once) or SCAV (per-step)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--judge", choices=JUDGE_NAMES, default="touche", help="value judge (recorded in every row)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    model = load_model()
    rows = []
    _, unrelated = load_unrelated_prompts()
    unrelated = unrelated[: args.n]
    for value in resolve_values(args.values):
        vec = load_vector(Path(args.vectors) / f"{value}.safetensors", model=model)
        gate = train_gate(model, value, kind="residual")
        report = evaluate_gate(gate, model)
        _, prompts = load_value_prompts(value)
        prompts = prompts[: args.n]
        kw = {"max_new_tokens": args.max_new_tokens, "batch_size": 8}
        plain = generate(model, prompts + unrelated, method="none", **kw)
        p0 = steering_defaults(value).p0 if args.p0 is None else args.p0
        steered = generate(model, prompts + unrelated, vector=vec, gate=gate, method="conva", p0=p0, mode=args.mode,
                           **kw)
        n = len(prompts)
        judge = load_judge(args.judge, value)
        j_plain = np.asarray(judge.probability(list(plain.texts[:n]), prompts))
        j_steer = np.asarray(judge.probability(list(steered.texts[:n]), prompts))
        held = model.cfg.n_layers - 2  # excluded from steering by construction
        safe = lambda ts: [t if t.strip() else "." for t in ts]  # noqa: E731
        a_plain = extract(model, safe(plain.texts[:n]), layers=[held], progress=False)[:, 0]
        a_steer = extract(model, safe(steered.texts[:n]), layers=[held], progress=False)[:, 0]
        row = {
            "value": value, "p0": p0, "mode": args.mode, "gate_g0": gate.g0, "gate_true_trigger": report.true_trigger_rate,
            "gate_false_trigger": report.false_trigger_rate, "fired_on_value_prompts": float(np.mean(
                [a.fired for a in steered.audits[:n]])), "fired_on_unrelated": float(np.mean(
                [a.fired for a in steered.audits[n:]])),
            "unrelated_unchanged": float(np.mean([a == b for a, b in zip(plain.texts[n:], steered.texts[n:],
                                                                          strict=True)])),
            "judge": args.judge, "judge_plain": float(j_plain.mean()), "judge_steered": float(j_steer.mean()),
            # paired, per prompt: how many answers the judge rates higher / lower after steering
            "judge_up": int(np.sum(j_steer > j_plain + 1e-9)), "judge_down": int(np.sum(j_steer < j_plain - 1e-9)),
            "judge_wilcoxon_p": _paired_p(j_steer, j_plain),
            "probe_layer": held, "probe_plain": float(vec.prob(held, a_plain).mean()),
            "probe_steered": float(vec.prob(held, a_steer).mean()),
            "example": {"prompt": prompts[0], "plain": plain.texts[0], "steered": steered.texts[0]},
        }
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if k != "example"}),
              flush=True)
        rows.append(row)
    atomic_write_text(args.out, json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
