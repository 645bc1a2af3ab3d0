"""Speed, measured side by side in one run: extraction, generation, gates, probes and the main job.

    python -m benchmarks [--quick] [--out out/bench] [--threads N] [--pristine]

Writes ``OUT/speed.md`` (tables, each goal with its measured ratio and PASS/MISS) and ``OUT/speed.json``.

How it measures:

- every comparison runs its contenders interleaved (the order rotates each repeat) after one
  warm-up call each, and compares medians, so a busy machine slows all of them alike;
- throughput counts only what was asked for: texts for extraction; for generation the generated
  tokens of each row up to and including its first EOS (never prompt or padding tokens), read off
  the new-token tensors each contender decodes;
- peak memory of extraction: on the CPU, the growth of the process' peak resident set size
  (Linux ``VmHWM``, the figure ``resource.getrusage`` reports as ``ru_maxrss``, reset through
  ``/proc/self/clear_refs`` after loading the model and one warm-up call on a single text, which
  pages in the lazily loaded weights) in a fresh subprocess per method; on a GPU,
  ``torch.cuda.max_memory_allocated`` growth in this process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from workbench.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
GOALS = {
    "extraction": ("extract vs bare HF forward (texts/s)", ">=", 0.9),
    "generation": ("steered generate vs HF generate (tok/s)", ">=", 0.9),
    "gate": ("gate latency / one prompt's generation", "<", 0.05),
}


@dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run."""

    quick: bool
    n_texts: int = 128
    extract_batch: int = 32
    extract_repeats: int = 3
    max_new_tokens: int = 32
    batch_sizes: tuple[int, ...] = (1, 4, 16)
    gen_repeats: int = 2
    gate_prompts: int = 8
    gate_repeats: int = 3
    probe_values: str = "all"
    demo_values: str = "all"
    value: str = "achievement"
    p0: float = 0.95


def make_settings(quick: bool) -> Settings:
    if quick:
        return Settings(quick=True, n_texts=32, extract_repeats=2, max_new_tokens=8, gen_repeats=1, gate_prompts=4,
                        gate_repeats=2, probe_values="achievement,power", demo_values="achievement,power")
    return Settings(quick=False)


# --------------------------------------------------------------------------------------------- helpers


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """Wall times of each function, run in rotating order ``repeats`` times (after one warm-up each)."""
    names = list(fns)
    if warmup:
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            gc.collect()
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def verdict(kind: str, ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    _, op, target = GOALS[kind]
    ok = ratio >= target if op == ">=" else ratio < target
    return "PASS" if ok else "MISS"


def bench_texts(n: int) -> list[str]:
    """``n`` sentences from the shipped controlled pairs, round-robin over the values."""
    from workbench.datasets import load_pairs
    from workbench.values import VALUE_NAMES

    pools = []
    for value in VALUE_NAMES:
        pairs = load_pairs(value)
        pools.append([t for p in pairs for t in (p.positive, p.negative)])
    out: list[str] = []
    i = 0
    while len(out) < n and any(i < len(p) for p in pools):
        out += [p[i] for p in pools if i < len(p)]
        i += 1
    return out[:n]


def bench_prompts(value: str, n: int) -> list[str]:
    """Held-out prompts about ``value`` (then unrelated ones if there are too few)."""
    from workbench.prompts import load_unrelated_prompts, load_value_prompts

    train, test = load_value_prompts(value)
    pool = test + train + load_unrelated_prompts()[1]
    return pool[:n]


def _proc_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# ------------------------------------------------------------------------------------------ extraction


def _sorted_batches(model: Any, texts: Sequence[str], batch: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """The batches ``extract`` forms (sorted by length), tokenized with left padding."""
    from workbench.activations import tokenize

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(texts), batch):
        idx = order[start : start + batch]
        ids, mask = tokenize(model, [texts[i] for i in idx])
        yield idx, ids, mask


def extract_ours(model: Any, texts: Sequence[str], batch: int) -> torch.Tensor:
    from workbench.activations import extract

    return extract(model, texts, batch_size=batch, progress=False)


def extract_hf(model: Any, texts: Sequence[str], batch: int, hf: Any = None) -> torch.Tensor:
    """Bare Hugging Face forward with ``output_hidden_states=True``; last real token of every layer.

    By default on :func:`workbench.model.plain_twin`: the plain HF model classes on the same weights.

    ``hidden_states[L + 1]`` is the output of decoder layer L, except the last entry, which
    Llama-style models return after the final norm.
    """
    from workbench.activations import last_token_index, position_ids
    from workbench.model import plain_twin

    hf = plain_twin(model) if hf is None else hf  # the bare HF model on the same weights
    out = torch.empty(len(texts), model.cfg.n_layers, model.cfg.d_model)
    with torch.no_grad():
        for idx, ids, mask in _sorted_batches(model, texts, batch):
            hidden = hf(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask),
                        output_hidden_states=True).hidden_states
            rows, last = torch.arange(ids.shape[0]), last_token_index(mask)
            out[torch.tensor(idx)] = torch.stack([h[rows, last] for h in hidden[1:]], 1).float().cpu()
    return out


def extract_tl_cache(model: Any, texts: Sequence[str], batch: int) -> torch.Tensor:
    """TransformerLens ``run_with_cache`` caching every hook point; last real token of each resid_post."""
    from workbench.activations import last_token_index
    from workbench.model import hook_name

    out = torch.empty(len(texts), model.cfg.n_layers, model.cfg.d_model)
    with torch.no_grad():
        for idx, ids, mask in _sorted_batches(model, texts, batch):
            _, cache = model.run_with_cache(ids, attention_mask=mask)
            rows, last = torch.arange(ids.shape[0]), last_token_index(mask)
            out[torch.tensor(idx)] = torch.stack(
                [cache[hook_name(layer)][rows, last] for layer in range(model.cfg.n_layers)], 1).float().cpu()
            del cache
    return out


EXTRACTORS: dict[str, Callable[..., torch.Tensor]] = {"workbench.extract": extract_ours,
                                                       "HF forward (hidden states)": extract_hf,
                                                       "TL run_with_cache (all hooks)": extract_tl_cache}


def memory_child(args: argparse.Namespace) -> int:
    """Subprocess entry: load the model, reset the peak counter, run one extractor once, print JSON."""
    from workbench.model import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    texts = bench_texts(args.n_texts)
    fn = EXTRACTORS[args.memory_child]
    fn(model, texts[:1], 1)  # page in the weights (loaded lazily) and one-time buffers before the reset
    gc.collect()
    base = _proc_kib("VmRSS")
    ok = reset_peak_rss()
    fn(model, texts, args.batch_size)
    peak = _proc_kib("VmHWM")
    if not ok or base is None or peak is None:
        print(json.dumps({"error": "peak RSS counter not available"}))
        return 0
    print(json.dumps({"peak_mib": round((peak - base) / 1024, 1), "rss_before_mib": round(base / 1024, 1)}))
    return 0


def measure_memory(s: Settings, args: argparse.Namespace, model: Any, texts: Sequence[str]) -> dict[str, Any]:
    device = torch.device(model.cfg.device)
    if device.type == "cuda":
        out = {}
        for name, fn in EXTRACTORS.items():
            gc.collect()
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn(model, texts, s.extract_batch)
            torch.cuda.synchronize()
            out[name] = {"peak_mib": round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)}
        return {"how": "torch.cuda.max_memory_allocated growth (GPU memory)", "methods": out}
    out = {}
    for name in EXTRACTORS:
        cmd = [sys.executable, "-m", "benchmarks.speed", "--memory-child", name, "--n-texts", str(len(texts)),
               "--batch-size", str(s.extract_batch), "--model", args.model, "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out[name] = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
            "error": (proc.stderr or proc.stdout)[-400:]}
    return {"how": "peak RSS growth over the RSS after loading and a one-text warm-up (Linux VmHWM = ru_maxrss, "
                   "reset via /proc/self/clear_refs), fresh subprocess per method", "methods": out}


def bench_extraction(model: Any, s: Settings, args: argparse.Namespace, pristine: Any) -> dict[str, Any]:
    texts = bench_texts(s.n_texts)
    fns: dict[str, Callable[[], Any]] = {name: (lambda f=f: f(model, texts, s.extract_batch))
                                         for name, f in EXTRACTORS.items()}
    if pristine is not None:
        fns["HF forward, pristine HF model (info)"] = lambda: extract_hf(model, texts, s.extract_batch, pristine)
    times = interleaved(fns, s.extract_repeats)
    ours, hf = extract_ours(model, texts, s.extract_batch), extract_hf(model, texts, s.extract_batch)
    agree = float((ours[:, :-1] - hf[:, :-1]).abs().max())  # HF's last hidden state is after the final norm
    memory = measure_memory(s, args, model, texts) if not args.no_memory else {"how": "skipped", "methods": {}}
    rows = {}
    for name, ts in times.items():
        rows[name] = {"times_s": ts, "median_s": median(ts), "texts_per_s": len(texts) / median(ts),
                      "peak_mib": memory["methods"].get(name, {}).get("peak_mib")}
    base = rows["HF forward (hidden states)"]["texts_per_s"]
    for row in rows.values():
        row["ratio_vs_hf"] = row["texts_per_s"] / base
    ratio = rows["workbench.extract"]["ratio_vs_hf"]
    return {"n_texts": len(texts), "batch_size": s.extract_batch, "repeats": s.extract_repeats, "rows": rows,
            "memory_how": memory["how"], "max_abs_diff_extract_vs_hf_layers_0_to_n_minus_2": agree,
            "goal_ratio": ratio, "goal": verdict("extraction", ratio)}


# ------------------------------------------------------------------------------------------ generation


def _row_counts(new_tokens: torch.Tensor | Sequence[Sequence[int]], eos: int) -> list[int]:
    """Generated tokens per row, up to and including its first EOS (never padding after it)."""
    rows = new_tokens.tolist() if isinstance(new_tokens, torch.Tensor) else [list(r) for r in new_tokens]
    return [row.index(eos) + 1 if eos in row else len(row) for row in rows]


def _decode(model: Any, new_tokens: torch.Tensor, eos: int) -> list[str]:
    texts = []
    for row in new_tokens.tolist():
        row = row[: row.index(eos)] if eos in row else row
        texts.append(model.tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts


def _counted(name: str, fn: Callable[[], tuple[list[str], Any]], eos: int,
             tokens: dict[str, list[int]], texts: dict[str, list[str]]) -> Callable[[], None]:
    """``fn`` (returning texts and new tokens) wrapped to store its texts and per-row token counts."""

    def run() -> None:
        texts[name], new_tokens = fn()
        tokens[name] = _row_counts(new_tokens, eos)

    return run


def bench_generation(model: Any, vec: Any, s: Settings, pristine: Any) -> dict[str, Any]:
    from workbench.activations import tokenize
    from workbench.generation import chat_texts, generate
    from workbench.model import plain_twin
    from workbench.steering import SteeringSpec, steer

    eos, pad = model.tokenizer.eos_token_id, model.tokenizer.pad_token_id
    n_new = s.max_new_tokens
    prompts_all = bench_prompts(s.value, max(s.batch_sizes))
    plain = plain_twin(model)

    def hf_generate(hf: Any, prompts: list[str]) -> tuple[list[str], torch.Tensor]:
        ids, mask = tokenize(model, chat_texts(model, prompts))
        with torch.no_grad():
            out = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False,
                              eos_token_id=eos, pad_token_id=pad, repetition_penalty=1.0, no_repeat_ngram_size=0)
        new = out[:, ids.shape[1]:]
        return _decode(model, new, eos), new

    def bridge_steered(prompts: list[str]) -> tuple[list[str], torch.Tensor]:
        ids, mask = tokenize(model, chat_texts(model, prompts))
        with torch.no_grad(), steer(model, vec, p0=s.p0):
            out = model.generate(ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False, verbose=False,
                                 return_type="tokens", eos_token_id=eos, use_past_kv_cache=True)
        new = out[:, ids.shape[1]:]
        return _decode(model, new, eos), new

    def ours(prompts: list[str], spec: SteeringSpec) -> tuple[list[str], tuple[tuple[int, ...], ...]]:
        out = generate(model, prompts, spec, max_new_tokens=n_new, batch_size=len(prompts))
        return list(out.texts), out.tokens

    base_name, steered_name = "HF generate (plain HF model)", "generate(method='conva-nogate')"
    bridge_name = "bridge generate under steer() (TransformerLens loop, info)"
    results: dict[str, Any] = {"max_new_tokens": n_new, "repeats": s.gen_repeats, "value": s.value, "p0": s.p0,
                               "steering_layers": list(vec.layers), "batches": {}}
    ratios = []
    for b in s.batch_sizes:
        prompts = prompts_all[:b]
        contenders: dict[str, Callable[[], tuple[list[str], Any]]] = {
            base_name: lambda p=prompts: hf_generate(plain, p),
            "generate(method='none')": lambda p=prompts: ours(p, SteeringSpec("none")),
            steered_name: lambda p=prompts: ours(p, SteeringSpec("conva-nogate", vector=vec, p0=s.p0)),
            bridge_name: lambda p=prompts: bridge_steered(p),
        }
        if pristine is not None:
            contenders["HF generate, separately loaded HF model (info)"] = lambda p=prompts: hf_generate(pristine, p)
        tokens: dict[str, list[int]] = {}
        texts: dict[str, list[str]] = {}
        # One warm-up per contender (at the first batch size) covers lazy initialisation.
        times = interleaved({name: _counted(name, fn, eos, tokens, texts) for name, fn in contenders.items()},
                            s.gen_repeats, warmup=b == s.batch_sizes[0])
        rows = {}
        for name, ts in times.items():
            n_tok = sum(tokens[name])
            rows[name] = {"times_s": ts, "median_s": median(ts), "generated_tokens": n_tok,
                          "rows_ended_early": sum(c < n_new for c in tokens[name]),
                          "tokens_per_s": n_tok / median(ts)}
        base = rows[base_name]["tokens_per_s"]
        for row in rows.values():
            row["ratio_vs_hf"] = row["tokens_per_s"] / base
        ratios.append(rows[steered_name]["ratio_vs_hf"])
        checks = {
            "none_equals_hf_texts": texts["generate(method='none')"] == texts[base_name],
            "steered_equals_bridge_path_texts": texts[steered_name] == texts[bridge_name],
            "steered_rows_changed": sum(a != b for a, b in zip(texts[steered_name], texts[base_name], strict=True)),
        }
        results["batches"][str(b)] = {"rows": rows, "checks": checks}
    worst = min(ratios)
    results.update(goal_ratio=worst, goal=verdict("generation", worst))
    return results


# ------------------------------------------------------------------------------------------------ gates


def bench_gates(model: Any, s: Settings, gen: dict[str, Any]) -> dict[str, Any]:
    from workbench.gate import load_encoder, train_gate
    from workbench.model import plain_twin

    prompts = bench_prompts(s.value, s.gate_prompts)
    gates, train_s = {}, {}
    for kind in ("residual", "encoder"):
        if kind == "encoder":
            load_encoder()  # loading the encoder once per process is not per-prompt latency
        t0 = time.perf_counter()
        gates[kind] = train_gate(model, s.value, kind=kind)
        train_s[kind] = time.perf_counter() - t0
    # generate() builds the plain twin once per call and scores the gate on it: time the gate that way.
    twin = plain_twin(model)
    fns = {f"{kind}/{i}": (lambda g=g, p=p: g.score([p], model, twin=twin)) for kind, g in gates.items()
           for i, p in enumerate(prompts)}
    fns.update({f"{kind}/batch": (lambda g=g: g.score(prompts, model, twin=twin)) for kind, g in gates.items()})
    times = interleaved(fns, s.gate_repeats)
    b1 = gen["batches"].get("1")
    if b1 is None:
        raise ValueError("The gate comparison needs generation at batch size 1.")
    steered = {name: b1["rows"][name]["median_s"] for name in ("generate(method='conva-nogate')",)}
    gen_latency = min(steered.values())
    rows = {}
    for kind in gates:
        per_prompt = [median(times[f"{kind}/{i}"]) for i in range(len(prompts))]
        latency = median(per_prompt)
        rows[kind] = {"train_s": train_s[kind], "latency_s": latency, "per_prompt_median_s": per_prompt,
                      "batched_per_prompt_s": median(times[f"{kind}/batch"]) / len(prompts),
                      "ratio_vs_generation": latency / gen_latency, "goal": verdict("gate", latency / gen_latency)}
    worst = max(r["ratio_vs_generation"] for r in rows.values())
    return {"n_prompts": len(prompts), "repeats": s.gate_repeats, "generation_latency_s": gen_latency,
            "generation_latency_from": min(steered, key=steered.get), "max_new_tokens": s.max_new_tokens,
            "rows": rows, "goal_ratio": worst, "goal": verdict("gate", worst)}


# ----------------------------------------------------------------------------------------------- probes


def bench_probes(model: Any, s: Settings) -> dict[str, Any]:
    """``fit_probes`` on cached activations (the same texts and split as ``probe_value``)."""
    from workbench.activations import extract
    from workbench.datasets import load_pairs, split_pairs
    from workbench.probes import fit_probes
    from workbench.values import resolve_values

    per_value, extract_s = {}, 0.0
    for value in resolve_values(s.probe_values):
        train, test = split_pairs(load_pairs(value), test_fraction=0.25, seed=0)
        texts = [p.positive for p in train] + [p.negative for p in train] + [p.positive for p in test] + [
            p.negative for p in test]
        t0 = time.perf_counter()
        acts = extract(model, texts, cache=True, progress=False)
        extract_s += time.perf_counter() - t0
        a, b = len(train), len(test)
        t0 = time.perf_counter()
        fit_probes(acts[:a], acts[a : 2 * a], acts[2 * a : 2 * a + b], acts[2 * a + b :])
        per_value[value] = time.perf_counter() - t0
    total = sum(per_value.values())
    n_fits = len(per_value) * model.cfg.n_layers
    return {"values": list(per_value), "n_layers": model.cfg.n_layers, "fit_s_per_value": per_value, "total_fit_s":
            total, "ms_per_layer_probe": 1000 * total / n_fits, "activation_load_or_extract_s": extract_s}


def bench_demo(s: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Wall time of the main job (``workbench demo``) in a subprocess, written to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        cmd = [sys.executable, "-m", "workbench.cli", "demo", "--out", tmp, "--values", s.demo_values,
               "--model", args.model, "--device", args.device]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    out = {"command": "workbench demo --values " + s.demo_values, "wall_s": wall, "returncode": proc.returncode}
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-800:]
    return out


# --------------------------------------------------------------------------------------------- report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_markdown(res: dict[str, Any]) -> str:
    env = res["environment"]
    lines = [f"# Speed benchmark ({'quick' if res['settings']['quick'] else 'full'} run)", "",
             f"{env['date']}; device `{env['device']}`, torch threads {env['torch_threads']}, "
             f"load average {env['loadavg_start']} -> {env['loadavg_end']} on {env['cpu_count']} CPUs; "
             f"torch {env['torch']}, transformers {env['transformers']}, transformer-lens {env['transformer_lens']}; "
             f"model `{env['model']}` ({env['n_layers']} layers, d_model {env['d_model']}). Contenders run interleaved "
             "(rotating order, one warm-up each); figures are medians; ratios compare runs of the same process.", "",
             "## Goals", "", "| goal | measured | target | result |", "| --- | --- | --- | --- |"]
    ex, gen, gate = res.get("extraction"), res.get("generation"), res.get("gates")
    if ex:
        lines.append(f"| {GOALS['extraction'][0]} | {ex['goal_ratio']:.2f}x | >= 0.9x | {ex['goal']} |")
    if gen:
        lines.append(f"| {GOALS['generation'][0]}, worst batch | {gen['goal_ratio']:.2f}x | >= 0.9x | {gen['goal']} |")
    if gate:
        for kind, row in gate["rows"].items():
            lines.append(f"| {kind} gate latency / one prompt's generation | {100 * row['ratio_vs_generation']:.1f}% | "
                         f"< 5% | {row['goal']} |")
    if ex:
        lines += ["", f"## Extraction ({ex['n_texts']} sentences, batch {ex['batch_size']}, {ex['repeats']} repeats)", "",
                  "| method | median s | texts/s | vs HF forward | peak memory MiB |", "| --- | --- | --- | --- | --- |"]
        for name, row in ex["rows"].items():
            lines.append(f"| {name} | {row['median_s']:.2f} | {row['texts_per_s']:.1f} | {row['ratio_vs_hf']:.2f}x | "
                         f"{_fmt(row['peak_mib'], 0)} |")
        lines += ["", f"Peak memory: {ex['memory_how']}. extract and the HF hidden states agree to "
                  f"{ex['max_abs_diff_extract_vs_hf_layers_0_to_n_minus_2']:.1e} (max abs, all but the last layer, "
                  "whose HF hidden state is taken after the final norm)."]
    if gen:
        lines += ["", f"## Generation (greedy, left padding, max_new_tokens {gen['max_new_tokens']}, "
                  f"{gen['repeats']} repeats; steering: value {gen['value']}, p0 {gen['p0']}, layers "
                  f"{gen['steering_layers']})", "",
                  "| batch | method | median s | generated tokens | rows ended early | tok/s | vs HF |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for b, block in gen["batches"].items():
            for name, row in block["rows"].items():
                lines.append(f"| {b} | {name} | {row['median_s']:.2f} | {row['generated_tokens']} | "
                             f"{row['rows_ended_early']} | {row['tokens_per_s']:.1f} | {row['ratio_vs_hf']:.2f}x |")
        lines += ["", "Checks per batch (same texts; steered rows that differ from unsteered):", ""]
        for b, block in gen["batches"].items():
            lines.append(f"- batch {b}: {json.dumps(block['checks'])}")
    if gate:
        lines += ["", f"## Gates ({gate['n_prompts']} prompts, one at a time, {gate['repeats']} repeats)", "",
                  f"Generation latency of one prompt: {gate['generation_latency_s']:.2f} s "
                  f"({gate['generation_latency_from']}, batch 1, {gate['max_new_tokens']} new tokens).", "",
                  "| gate | training s | latency per prompt ms | share of one generation | result | "
                  "all prompts in one call, ms per prompt |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for kind, row in gate["rows"].items():
            lines.append(f"| {kind} | {row['train_s']:.1f} | {1000 * row['latency_s']:.0f} | "
                         f"{100 * row['ratio_vs_generation']:.1f}% | {row['goal']} | "
                         f"{1000 * row['batched_per_prompt_s']:.0f} |")
        lines += ["", "The share depends on the answer length: generation latency grows with max_new_tokens, "
                  "the gate's does not."]
    pr = res.get("probes")
    if pr:
        lines += ["", "## Probes and the main job", "", "| measure | seconds |", "| --- | --- |",
                  f"| fit_probes, {len(pr['values'])} values x {pr['n_layers']} layers (cached activations) | "
                  f"{pr['total_fit_s']:.1f} ({pr['ms_per_layer_probe']:.0f} ms per layer probe) |"]
    demo = res.get("demo")
    if demo:
        if not pr:
            lines += ["", "## Main job", "", "| measure | seconds |", "| --- | --- |"]
        status = "" if demo["returncode"] == 0 else f" (exit code {demo['returncode']})"
        lines.append(f"| `{demo['command']}` wall time{status} | {demo['wall_s']:.1f} |")
    for note in res.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- main


def _environment(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "?"

    return {"date": time.strftime("%Y-%m-%d %H:%M"), "device": str(model.cfg.device), "torch_threads":
            torch.get_num_threads(), "cpu_count": os.cpu_count(), "loadavg_start": _loadavg(), "python":
            platform.python_version(), "torch": torch.__version__, "transformers": ver("transformers"),
            "transformer_lens": ver("transformer-lens"), "model": args.model,
            "n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model}


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _pristine(model: Any, args: argparse.Namespace) -> Any:
    """A second, unwrapped Hugging Face copy of the same weights (for information rows)."""
    from transformers import AutoModelForCausalLM

    from workbench.model import embedded_model_folder
    from workbench.registry import is_embedded

    src = embedded_model_folder(args.model) if is_embedded(args.model) else Path(args.model)
    if not (Path(src) / "config.json").is_file():
        return None
    hf = AutoModelForCausalLM.from_pretrained(src, dtype=model.original_model.dtype).to(model.cfg.device)
    return hf.eval()


def build_parser() -> argparse.ArgumentParser:
    from workbench.model import DEFAULT_MODEL

    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smaller run (fewer texts, tokens, repeats and values)")
    p.add_argument("--out", default="out/bench")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--pristine", action="store_true", help="add information rows for an unwrapped HF copy")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: extraction,generation,gates,probes,demo")
    p.add_argument("--repeats", type=int, default=0, help="override the number of timed repeats of every section")
    p.add_argument("--batch-sizes", default="", help="override the generation batch sizes, e.g. 1,4,16")
    p.add_argument("--max-new-tokens", type=int, default=0, help="override the generated tokens per prompt")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device", default="auto")
    p.add_argument("--memory-child", choices=list(EXTRACTORS), help=argparse.SUPPRESS)
    p.add_argument("--n-texts", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_grad_enabled(False)
    if args.memory_child:
        return memory_child(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    from workbench.model import load_model
    from workbench.probes import FALLBACK_TOP, probe_value

    s = make_settings(args.quick)
    overrides: dict[str, Any] = {}
    if args.repeats:
        overrides.update(extract_repeats=args.repeats, gen_repeats=args.repeats, gate_repeats=args.repeats)
    if args.batch_sizes:
        overrides["batch_sizes"] = tuple(int(x) for x in args.batch_sizes.split(","))
    if args.max_new_tokens:
        overrides["max_new_tokens"] = args.max_new_tokens
    s = replace(s, **overrides)
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}
    if "generation" in skip:
        skip.add("gates")  # the gate is measured against one prompt's generation
    out_dir = Path(args.out)
    t_start = time.perf_counter()
    model = load_model(args.model, device=args.device)
    pristine = _pristine(model, args) if args.pristine else None
    res: dict[str, Any] = {"settings": asdict(s), "environment": _environment(model, args), "notes": []}

    def section(name: str, fn: Callable[[], Any]) -> None:
        if name in skip:
            return
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        res[name] = fn()
        print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "speed.partial.json", json.dumps(res, indent=2) + "\n")

    section("extraction", lambda: bench_extraction(model, s, args, pristine))
    if "generation" not in skip:
        from workbench.datasets import load_pairs

        vec = probe_value(model, load_pairs(s.value), cache=True, fallback_top=FALLBACK_TOP, progress=False)
        section("generation", lambda: bench_generation(model, vec, s, pristine))
    section("gates", lambda: bench_gates(model, s, res["generation"]))
    section("probes", lambda: bench_probes(model, s))
    section("demo", lambda: bench_demo(s, args))
    res["environment"]["loadavg_end"] = _loadavg()
    res["environment"]["total_s"] = time.perf_counter() - t_start
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "speed.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(out_dir / "speed.md", render_markdown(res))
    (out_dir / "speed.partial.json").unlink(missing_ok=True)
    print(render_markdown(res))
    print(f"wrote {out_dir / 'speed.md'} and {out_dir / 'speed.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
