"""Several values at once, and power as a 2-D subspace: control success vs one direction at a time.

Profiles: for each profile, the held-out prompts of all its values are answered unsteered, steered
toward each value alone (ConVA without gate, the value's swept P0), and steered toward the whole
profile at once (minimum-norm shift, :func:`workbench.multi.steer_profile`). Each answer set is scored
by every profile value's offline judge (CSR) and by fluency (thresholds from the unsteered answers).

Subspace: power's held-out prompts answered unsteered, with the single probe direction, and with
the 2-D subspace (the probe plus an orthogonal second probe, :mod:`workbench.subspace`).

    python -m benchmarks.profiles --vectors out/vectors --n 8 --out out/bench/profiles.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.datasets import load_pairs
from workbench.defaults import steering_defaults
from workbench.evaluation.judges import EncoderJudge, train_encoder_judge
from workbench.evaluation.metrics import answer_perplexity, calibrate_fluency, fluency_flags, repetition_ratio
from workbench.generation import chat_texts, generate
from workbench.io import atomic_write_text
from workbench.model import load_model
from workbench.multi import ProfileConflictWarning, steer_profile
from workbench.prompts import load_value_prompts
from workbench.steering import steer
from workbench.subspace import orthogonal_probe, steer_subspace
from workbench.vectors import ValueVector, load_vector

PROFILES = (("benevolence", "universalism"), ("achievement", "power"), ("security", "conformity", "tradition"),
            ("self-direction", "stimulation"), ("power", "universalism"))


def _answers(model: Any, prompts: list[str], ctx: Callable[[], contextlib.AbstractContextManager[Any]],
             max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Answers in batches, each inside a fresh steering block (prompt-once shifts are per prompt pass)."""
    texts: list[str] = []
    for start in range(0, len(prompts), batch_size):
        with ctx():
            texts += generate(model, prompts[start : start + batch_size], method="none", max_new_tokens=max_new_tokens,
                              batch_size=batch_size).texts
    return texts


def _score(model: Any, prompts: list[str], runs: dict[str, list[str]], judges: dict[str, EncoderJudge]
           ) -> dict[str, dict[str, float]]:
    """Per run: CSR under each judge and fluency against thresholds from the unsteered run."""
    chats = chat_texts(model, prompts)
    ppl = {name: answer_perplexity(model, chats, answers) for name, answers in runs.items()}
    calibration = calibrate_fluency(list(ppl["none"]), [repetition_ratio(a) for a in runs["none"]])
    return {name: {**{f"csr_{v}": float(np.mean(j.judge(answers))) for v, j in judges.items()},
                   "fluency": float(np.mean(fluency_flags(answers, ppl[name], calibration)))}
            for name, answers in runs.items()}


def profile_rows(model: Any, vectors: dict[str, ValueVector], profile: Sequence[str], n: int, max_new_tokens: int,
                 judges: dict[str, EncoderJudge]) -> dict[str, Any]:
    prompts = [p for v in profile for p in load_value_prompts(v)[1][:n]]
    p0 = {v: steering_defaults(v).p0 for v in profile}
    runs = {"none": _answers(model, prompts, contextlib.nullcontext, max_new_tokens)}
    for v in profile:
        runs[f"only {v}"] = _answers(model, prompts, lambda v=v: steer(model, vectors[v], p0=p0[v]), max_new_tokens)
    sub = {v: vectors[v] for v in profile}
    shared = sorted(set.intersection(*(set(vec.layers) for vec in sub.values())))
    layers = shared or sorted(set().union(*(vec.layers for vec in sub.values())))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProfileConflictWarning)
        runs["profile"] = _answers(model, prompts, lambda: steer_profile(model, sub, p0, layers=layers), max_new_tokens)
    gave_way = sum(issubclass(w.category, ProfileConflictWarning) for w in caught)
    return {"profile": list(profile), "p0": p0, "layers": layers, "n_prompts": len(prompts),
            "conflict_warnings": gave_way, "scores": _score(model, prompts, runs, judges),
            "example": {"prompt": prompts[0], **{k: a[0] for k, a in runs.items()}}}


def subspace_rows(model: Any, vec: ValueVector, n: int, max_new_tokens: int, judge: EncoderJudge,
                  p0s: Sequence[float] = ()) -> dict[str, Any]:
    """Unsteered, one direction and the 2-D subspace at each P0 of ``p0s`` (default: the swept P0)."""
    second = orthogonal_probe(model, load_pairs(vec.value), vec, cache=True, progress=False)
    prompts = load_value_prompts(vec.value)[1][:n]
    p0s = list(p0s) or [steering_defaults(vec.value).p0]
    runs = {"none": _answers(model, prompts, contextlib.nullcontext, max_new_tokens)}
    for p0 in p0s:
        runs[f"one direction, P0 {p0}"] = _answers(model, prompts, lambda p=p0: steer(model, vec, p0=p), max_new_tokens)
        runs[f"2-D subspace, P0 {p0}"] = _answers(
            model, prompts, lambda p=p0: steer_subspace(model, [vec, second], p0=p), max_new_tokens)
    return {"value": vec.value, "p0": p0s, "layers": list(vec.layers), "n_prompts": len(prompts),
            "first_test_acc": {int(layer): float(vec.test_acc[layer]) for layer in vec.layers},
            "second_test_acc": {int(layer): float(second.test_acc[layer]) for layer in vec.layers},
            "scores": _score(model, prompts, runs, {vec.value: judge})}


def render(res: dict[str, Any]) -> str:
    lines = ["# Several values at once, and a 2-D subspace", "",
             "CSR per profile value (offline judge) on the held-out prompts of every profile value; "
             "fluency against thresholds from the unsteered answers.", ""]
    for row in res["profiles"]:
        vals = row["profile"]
        lines += [f"## {' + '.join(vals)} (n={row['n_prompts']}, layers {row['layers']}, "
                  f"conflict warnings {row['conflict_warnings']})", "",
                  "| run | " + " | ".join(f"CSR {v}" for v in vals) + " | fluency |",
                  "|---" * (len(vals) + 2) + "|"]
        for run, s in row["scores"].items():
            lines.append(f"| {run} | " + " | ".join(f"{s[f'csr_{v}']:.2f}" for v in vals) + f" | {s['fluency']:.2f} |")
        lines.append("")
    sub = res.get("subspace")
    if sub:
        lines += [f"## {sub['value']}: one direction vs 2-D subspace (n={sub['n_prompts']})", "",
                  "Second probe's test accuracy at the steering layers: "
                  + ", ".join(f"L{k} {v:.2f} (first {sub['first_test_acc'][k]:.2f})"
                              for k, v in sub["second_test_acc"].items()), "",
                  "| run | CSR | fluency |", "|---|---|---|"]
        key = f"csr_{sub['value']}"
        lines += [f"| {run} | {s[key]:.2f} | {s['fluency']:.2f} |" for run, s in sub["scores"].items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", default="out/vectors")
    ap.add_argument("--n", type=int, default=8, help="held-out prompts per value")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--subspace-value", default="power")
    ap.add_argument("--subspace-p0", default="", help="comma-separated P0s for the subspace (default: swept P0)")
    ap.add_argument("--skip-profiles", action="store_true", help="only the subspace comparison")
    ap.add_argument("--skip-subspace", action="store_true", help="only the profiles")
    ap.add_argument("--out", default="out/bench/profiles.json")
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model()
    names = sorted({v for p in PROFILES for v in p} | {args.subspace_value})
    vectors = {v: load_vector(Path(args.vectors) / f"{v}.safetensors", model=model) for v in names}
    judges: dict[str, EncoderJudge] = {}

    def judged(values: Sequence[str]) -> dict[str, EncoderJudge]:
        for v in values:
            if v not in judges:
                judges[v] = train_encoder_judge(v)
        return {v: judges[v] for v in values}

    res: dict[str, Any] = {"profiles": []}
    if not args.skip_subspace:
        res["subspace"] = subspace_rows(model, vectors[args.subspace_value], 3 * args.n, args.max_new_tokens,
                                        judged([args.subspace_value])[args.subspace_value],
                                        [float(x) for x in args.subspace_p0.split(",") if x])
        print(json.dumps({k: res["subspace"][k] for k in ("second_test_acc", "scores")}), flush=True)
    for profile in () if args.skip_profiles else PROFILES:
        res["profiles"].append(profile_rows(model, vectors, profile, args.n, args.max_new_tokens, judged(profile)))
        print(json.dumps({k: res["profiles"][-1][k] for k in ("profile", "scores")}), flush=True)
    out = Path(args.out)
    atomic_write_text(out, json.dumps(res, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), render(res))
    print(render(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
