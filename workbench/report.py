"""The reproduction report: the paper's four claims against a run's numbers, with n and 95% intervals.

Reads what :mod:`workbench.reproduce` wrote into a results folder (``accuracy.csv``, ``results.csv``,
``capability.csv``, ``figures/circumplex_agreement.json``, ``stages.json``), writes small CSV tables
under ``OUT/results/`` and ``OUT/reproduction.md``. Every verdict follows a rule stated in the report;
a claim whose inputs are missing is "not testable here" with the reason, and a CSR verdict on fewer
than the 10 values says so ("partial: k of 10 values").

Example:
    >>> write_report(Path("out/repro"), "embedded:qwen2.5-coder-1.5b-instruct", stages={})
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from workbench.constants import EXCLUDE_LAST
from workbench.evaluation.suite_config import is_mmlu_accuracy
from workbench.io import atomic_write_text
from workbench.stats import wilson_interval
from workbench.tables import write_csv
from workbench.values import VALUE_NAMES

__all__ = ["PAPER", "claims", "write_report"]

BASELINES = ("none", "prompt", "caa")
PAPER = {
    "csr": "ConVA's CSR +29.6% relative over prompting and CAA on average, fluency >= 0.97",
    "negative": "ConVA keeps control under a negative system prompt where prompting fails",
    "capability": "MMLU .476 unsteered -> .455 with the gate, .272 without",
    "circumplex": "value-vector similarities follow Schwartz's circumplex",
}


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _count(row: Mapping[str, str], key: str = "csr") -> int:
    """The answers behind a row's share ``key`` (results.csv stores k / n rounded to 6 decimals)."""
    return round(float(row[key]) * int(row["n"]))


def _mean(rows: Sequence[Mapping[str, str]], method: str, condition: str, key: str = "csr") -> float | None:
    """The mean of a share over the values, exact from the counts, so equal counts tie instead of
    differing by the rounding of results.csv."""
    xs = [Fraction(_count(r, key), int(r["n"])) for r in rows if r["method"] == method and r["condition"] == condition]
    return float(sum(xs) / len(xs)) if xs else None


def claims(results: Sequence[Mapping[str, str]], capability: Sequence[Mapping[str, str]],
           agreement: Mapping[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """(claim, paper, ours, verdict) for the four claims, each verdict by the rule named in ``ours``."""
    out = []
    covered = len({r["value"] for r in results})
    partial = f" (partial: {covered} of {len(VALUE_NAMES)} values)" if 0 < covered < len(VALUE_NAMES) else ""
    conva, flu = _mean(results, "conva", "plain"), _mean(results, "conva", "plain", "fluency")
    base = {m: _mean(results, m, "plain") for m in ("prompt", "caa")}
    if conva is None or None in base.values():
        out.append(("csr", PAPER["csr"], "needs conva, prompt and caa in results.csv", "not testable here"))
    else:
        best = max(base.values())
        gain = (conva - best) / best if best else float("inf")
        per_value = _values_beating_baselines(results)
        ok = conva > best and (flu or 0) >= 0.95
        out.append(("csr", PAPER["csr"], f"mean CSR conva {conva:.3f} vs prompt {base['prompt']:.3f}, caa {base['caa']:.3f} "
                    f"({gain:+.1%} over the better); fluency {flu:.3f}; conva above every baseline for {per_value} values "
                    "(rule: mean CSR above both baselines and fluency >= 0.95)",
                    ("confirmed" if ok else "not confirmed") + partial))
    neg = {m: _mean(results, m, "negative-prompt") for m in ("none", "prompt", "conva")}
    if None in neg.values():
        out.append(("negative", PAPER["negative"], "needs none, prompt and conva under the negative prompt",
                    "not testable here"))
    else:
        ok = neg["conva"] > max(neg["none"], neg["prompt"])
        out.append(("negative", PAPER["negative"], f"CSR under the negative prompt: conva {neg['conva']:.3f}, prompt "
                    f"{neg['prompt']:.3f}, none {neg['none']:.3f} (rule: conva above both)",
                    ("confirmed" if ok else "not confirmed") + partial))
    mmlu = {r["method"]: (float(r["score"]), int(r["n"])) for r in capability
            if is_mmlu_accuracy(r["benchmark"])}
    if not {"none", "conva", "conva-nogate"} <= set(mmlu):
        out.append(("capability", PAPER["capability"], "needs MMLU for none, conva and conva-nogate (--mmlu)",
                    "not testable here"))
    else:
        (a, n), g, u = mmlu["none"], mmlu["conva"][0], mmlu["conva-nogate"][0]
        lo, hi = wilson_interval(a, n)
        ok = abs(g - a) <= 0.01 and u < lo
        out.append(("capability", PAPER["capability"], f"MMLU n={n}: none {a:.3f} [{lo:.3f}, {hi:.3f}], gated {g:.3f}, "
                    f"ungated {u:.3f} (rule: gated within 0.01, ungated below the unsteered 95% interval)",
                    "confirmed" if ok else "not confirmed"))
    if agreement is None:
        out.append(("circumplex", PAPER["circumplex"], "needs >= 3 vectors and the figures stage", "not testable here"))
    else:
        rho = float(agreement["spearman_rho"])
        out.append(("circumplex", PAPER["circumplex"], f"Spearman rho {rho:.3f} between vector similarity and circumplex "
                    f"distance over {agreement['n_pairs']} pairs ({agreement['layer_rule']}; rule: rho <= -0.3)",
                    "confirmed" if rho <= -0.3 else "not confirmed"))
    return out


def _values_beating_baselines(results: Sequence[Mapping[str, str]]) -> str:
    by = {(r["value"], r["method"]): r for r in results if r["condition"] == "plain"}
    values = sorted({v for v, _ in by})
    wins = [v for v in values if (v, "conva") in by and float(by[(v, "conva")]["fluency"]) >= 0.95
            and all((v, m) in by and float(by[(v, "conva")]["csr"]) > float(by[(v, m)]["csr"]) for m in BASELINES)]
    return f"{len(wins)} of {len(values)}"


def _csr_table(results: Sequence[Mapping[str, str]]) -> list[tuple[Any, ...]]:
    rows = []
    for r in results:
        n, csr = int(r["n"]), float(r["csr"])
        lo, hi = wilson_interval(csr, n)
        rows.append((r["value"], r["method"], r["condition"], n, round(csr, 4), round(lo, 4), round(hi, 4),
                     round(float(r["fluency"]), 4)))
    return rows


def _pooled_table(results: Sequence[Mapping[str, str]]) -> list[tuple[Any, ...]]:
    """Per method and condition: answers judged value-laden over all values, CSR with its 95% interval, mean fluency."""
    rows = []
    for method, condition in dict.fromkeys((r["method"], r["condition"]) for r in results):
        sub = [r for r in results if r["method"] == method and r["condition"] == condition]
        k, n = sum(_count(r) for r in sub), sum(int(r["n"]) for r in sub)
        lo, hi = wilson_interval(k / n, n)
        rows.append((method, condition, len(sub), k, n, round(k / n, 4), round(lo, 4), round(hi, 4),
                     round(_mean(sub, method, condition, "fluency"), 4)))
    return rows


def _probe_table(accuracy: Sequence[Mapping[str, str]], exclude_last: int = EXCLUDE_LAST) -> list[tuple[Any, ...]]:
    rows = []
    for value in dict.fromkeys(r["value"] for r in accuracy):
        sub = [r for r in accuracy if r["value"] == value]
        allowed = sub[: len(sub) - exclude_last]
        best = max(allowed, key=lambda r: float(r["test_acc"]))
        rows.append((value, int(best["layer"]), round(float(best["test_acc"]), 4),
                     sum(float(r["test_acc"]) > 0.9 for r in allowed)))
    return rows


def write_report(out: Path, model_name: str, stages: Mapping[str, Any]) -> Path:
    """Write ``out/results/*.csv`` and ``out/reproduction.md`` from whatever the run has produced so far."""
    out = Path(out)
    results, capability = _read(out / "results.csv"), _read(out / "capability.csv")
    accuracy = _read(out / "accuracy.csv")
    agreement_path = out / "figures" / "circumplex_agreement.json"
    agreement = json.loads(agreement_path.read_text(encoding="utf-8")) if agreement_path.is_file() else None
    table = claims(results, capability, agreement)
    others = {f.stem[len("results_"):]: _read(f) for f in sorted(out.glob("results_*.csv"))}  # second judges
    for judge, rows in others.items():
        table += [(f"{c} ({judge} judge)", p, o, v) for c, p, o, v in claims(rows, [], None)[:2]]
    res = out / "results"
    write_csv(res / "claims.csv", ["claim", "paper", "ours", "verdict"], table)
    probe_rows = _probe_table(accuracy)
    write_csv(res / "probes.csv", ["value", "best_layer", "best_test_acc", "layers_above_0.9"], probe_rows)
    csr_rows = _csr_table(results)
    csr_columns = ["value", "method", "condition", "n", "csr", "ci_low", "ci_high", "fluency"]
    write_csv(res / "csr.csv", csr_columns, csr_rows)
    for judge, rows in others.items():
        write_csv(res / f"csr_{judge}.csv", csr_columns, _csr_table(rows))
    pooled_rows = _pooled_table(results)
    write_csv(res / "csr_pooled.csv", ["method", "condition", "values", "value_laden", "n", "csr", "ci_low", "ci_high",
                                       "mean_fluency"], pooled_rows)
    write_csv(res / "capability.csv", ["method", "benchmark", "score", "n"],
              [(r["method"], r["benchmark"], r["score"], r["n"]) for r in capability])
    stage_rows = [(s, len(v.get("runs", [])), round(sum(x["seconds"] for x in v.get("runs", [])), 1))
                  for s, v in stages.items()]
    write_csv(res / "stages.csv", ["stage", "runs", "seconds"], stage_rows)
    lines = [f"# Reproduction on {model_name or 'the model of this run'}", "",
             "Generated by `workbench reproduce`; tables under `results/`, figures under `figures/`.", "",
             "## The paper's claims", "", "| claim | paper | ours | verdict |", "|---|---|---|---|"]
    lines += [f"| {c} | {p} | {o} | **{v}** |" for c, p, o, v in table]
    lines += ["", "## Probes (best held-out test accuracy outside the last 5 layers)", "",
              "| value | layer | test acc | layers > 0.9 |", "|---|---|---|---|"]
    lines += [f"| {v} | {layer} | {acc:.3f} | {k} |" for v, layer, acc, k in probe_rows]
    for title, rows in [("", csr_rows), *((f", judged by {j}", _csr_table(r)) for j, r in others.items())]:
        if rows:
            lines += ["", f"## CSR with 95% Wilson interval, and fluency{title}", "",
                      "| value | method | condition | n | CSR [95% CI] | fluency |", "|---|---|---|---|---|---|"]
            lines += [f"| {v} | {m} | {c} | {n} | {x:.2f} [{lo:.2f}, {hi:.2f}] | {f:.2f} |"
                      for v, m, c, n, x, lo, hi, f in rows]
    if pooled_rows:
        lines += ["", "## CSR pooled over the values, with 95% Wilson interval", "",
                  "| method | condition | values | CSR [95% CI] (value-laden / n) | mean fluency |", "|---|---|---|---|---|"]
        lines += [f"| {m} | {c} | {nv} | {x:.2f} [{lo:.2f}, {hi:.2f}] ({k}/{n}) | {f:.2f} |"
                  for m, c, nv, k, n, x, lo, hi, f in pooled_rows]
    if capability:
        lines += ["", "## Capability", "", "| method | benchmark | score | n |", "|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['benchmark']} | {float(r['score']):.4f} | {r['n']} |" for r in capability]
    if stage_rows:
        lines += ["", "## Wall time", "", "| stage | runs | seconds |", "|---|---|---|"]
        lines += [f"| {s} | {k} | {t:.0f} |" for s, k, t in stage_rows]
    return atomic_write_text(out / "reproduction.md", "\n".join(lines) + "\n")
