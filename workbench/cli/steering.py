"""Steering commands: ``steer`` (unsteered vs steered answers with the audit) and ``sweep`` (per-value defaults)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import common, fields
from workbench.constants import DEFAULT_GATE_KIND
from workbench.datasets import DATASETS
from workbench.tables import write_csv
from workbench.values import resolve_values, value_name

# Help texts of the options made from the library's settings (workbench.cli.fields), in --help order;
# the defaults are those of the fields and keyword arguments themselves.
_SWEEP, _GENERATE = "workbench.sweep:sweep_defaults", "workbench.generation:generate"  # read without importing
_SPEC_HELP = {
    "mode": common.MODE_HELP,
    "p0": "target probe probability at each steered layer (default: per value, swept)",
    "g0": "gate threshold (default: the calibrated one)",
    "layers": "comma-separated steering layers (default: the vector's)",
    "coef": "CAA coefficient on the mean difference (default: per value)",
}
_GENERATE_HELP = {
    "max_new_tokens": "length of each answer in tokens",
    "allow_special_tokens": "let control-token strings in prompts (<|im_end|>, ...) act as control tokens; by default "
                            "they are read as text, so a prompt cannot forge a system turn",
}
_SWEEP_HELP = {
    "n_prompts": "training prompts per value",
    "max_new_tokens": "length of each answer in tokens",
    "min_fluency": "a setting must keep this share of the unsteered fluency to be chosen (lower: stronger steering)",
    "judge": "value judge for the CSR (pairs: trained on the steering data, comparison only)",
}


def cmd_steer(args: argparse.Namespace) -> int:
    """``workbench steer``: unsteered and steered answers to each prompt, with the gate and per-layer audit."""
    import json

    from workbench.gate import load_gate, train_gate
    from workbench.generation import generate
    from workbench.prompts import read_prompts
    from workbench.steering import SteeringSpec, check_probability

    if (args.prompt is None) == (args.prompts is None):
        raise ValueError("Give exactly one of --prompt TEXT or --prompts FILE.")
    prompts = [args.prompt] if args.prompt is not None else read_prompts(args.prompts)
    value = value_name(args.value)
    layers = common.parse_layers(args.layers)
    if args.gate is not None and (args.gate_prompts is not None or args.save_gate is not None):
        raise ValueError("--gate loads a saved gate; --gate-prompts and --save-gate are for training one. Give one or the other.")
    for option, given in (("--g0", args.g0), ("--gate", args.gate), ("--gate-prompts", args.gate_prompts),
                          ("--save-gate", args.save_gate)):
        if given is not None and args.method != "conva":
            raise ValueError(f"{option} is for the gate, but method {args.method!r} steers without one. Drop {option}, "
                             "or use --method conva.")
    if args.g0 is not None:
        check_probability("--g0", args.g0)
    common.check_strengths(args)
    common.check_file_arg(args.gate, "--gate")
    common.check_file_arg(args.gate_prompts, "--gate-prompts")
    gate_prompts = read_prompts(args.gate_prompts) if args.gate_prompts else None
    model = common.load(args)
    vec = common.vector_for(model, value, Path(args.vectors), args.dataset)
    gate = None
    if args.method == "conva":
        from workbench.demo import gate_path, load_saved_gate
        from workbench.progress import spinner

        saved = None if args.gate or gate_prompts or args.gate_kind != DEFAULT_GATE_KIND else \
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
        common.check_value(gate.value, value, f"Gate {args.gate}", f"drop --gate to train a {value} gate now")
        if args.save_gate:
            from workbench.gate import save_gate

            print(f"saved the gate to {save_gate(gate, args.save_gate)}", file=sys.stderr)
    shared = fields.field_values(args, _GENERATE)
    spec = fields.from_args(SteeringSpec, args, method=args.method, vector=vec, gate=gate, layers=layers,
                            value=value).resolve(model)
    p0, coef = spec.p0, spec.coef
    from workbench.progress import spinner

    with spinner(f"generating {len(prompts)} x 2 answers of up to {args.max_new_tokens} tokens (unsteered, {args.method})"):
        plain = generate(model, prompts, method="none", **shared)
        steered = generate(model, prompts, spec, **shared)
    from workbench.model import fingerprint

    g0 = None if gate is None else (gate.g0 if args.g0 is None else args.g0)
    setting = {"value": value, "method": args.method, "mode": args.mode, "p0": None if args.method == "caa" else p0,
               "coef": coef if args.method == "caa" else None, "g0": g0,
               "steering_layers": list(spec.layers), "model": args.model,
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


def _closed_gate_note(record: Any, g0: float | None, value: str) -> str | None:
    """What a closed gate means for this answer and what to try; None where the gate opened."""
    if record.fired or record.gate_score is None or g0 is None:
        return None
    return (f"the gate stayed closed (score {record.gate_score:.3f} <= g0 {g0:g}), so the steered answer is the "
            f"unsteered one. To steer it: lower the threshold (--g0 {max(0.01, record.gate_score * 0.9):.2f}), put "
            f"{value} at stake in the prompt, train the gate on prompts like yours (--gate-prompts FILE), or steer "
            "without a gate (--method conva-nogate).")


def cmd_sweep(args: argparse.Namespace) -> int:
    """``workbench sweep``: per-value P0 and CAA coefficient -> OUT/sweep.csv and OUT/steering_defaults.json."""
    from workbench.defaults import save_defaults
    from workbench.model import fingerprint
    from workbench.sweep import sweep_defaults

    model = common.load(args)
    out = Path(args.out)
    vectors = {v: common.vector_for(model, v, Path(args.vectors), "controlled") for v in resolve_values(args.values)}
    rows, chosen = sweep_defaults(model, vectors, **fields.field_values(args, _SWEEP))
    write_csv(out / "sweep.csv", ["value", "method", "setting", "csr", "fluency", "n", "score"],
              [(r.value, r.method, r.setting, r.csr, r.fluency, r.n, r.score) for r in rows])
    meta = {"command": "workbench sweep " + " ".join(sys.argv[2:]), "model": args.model,
            "model_fingerprint": fingerprint(model), "n_prompts": args.n_prompts, "max_new_tokens": args.max_new_tokens,
            "min_fluency": args.min_fluency, "judge": args.judge}
    path = save_defaults(chosen, out / "steering_defaults.json", meta)
    for value, d in chosen.items():
        print(f"{value:15s} p0={d.p0:<5} coef={d.coef}")
    print(f"wrote {out / 'sweep.csv'} and {path}")
    return 0


def add_steer(sub: argparse._SubParsersAction) -> None:
    """The ``steer`` subcommand."""
    from workbench.constants import GATE_KINDS, GENERATION_METHODS, MODES

    p = sub.add_parser("steer", help="unsteered vs steered answers, with the audit")
    p.add_argument("--value", required=True, help="value to steer: one of the 10, or your own concept with a probed vector")
    p.add_argument("--prompt", help="one prompt")
    p.add_argument("--prompts", help="a file of prompts: CSV with a text column, JSONL with text, or one per line")
    p.add_argument("--method", choices=[m for m in GENERATION_METHODS if m != "none"], default="conva",
                   help="conva: closed-form shift behind the gate; conva-nogate: no gate; caa: fixed coefficient; "
                        "prompt: the value as a system prompt")
    fields.add_fields(p, "workbench.steering.spec:SteeringSpec", _SPEC_HELP, only=_SPEC_HELP, overrides={
        "mode": {"choices": MODES}, "layers": {"type": str}})  # --layers: parsed with its own error messages
    p.add_argument("--gate", default=None,
                   help="a saved gate (.safetensors); default: the one `workbench demo` saved beside --vectors "
                        "(VECTORS/../gates/<value>.safetensors), else train one now")
    p.add_argument("--gate-kind", choices=GATE_KINDS, default=DEFAULT_GATE_KIND,
                   help="residual: a probe on the model's own residual; encoder: on an independent sentence encoder")
    p.add_argument("--gate-prompts", default=None,
                   help="train the gate on these prompts where the value is at stake (CSV text column, JSONL text, "
                        "or one a line; needed for your own concepts); negatives: the shipped unrelated and "
                        "other-value prompts")
    p.add_argument("--save-gate", default=None, help="save the trained gate here (.safetensors) to reuse it with --gate")
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors from `workbench probe`")
    p.add_argument("--dataset", choices=DATASETS, default="controlled", help="pairs to probe if no vector is saved")
    p.add_argument("--json", action="store_true", help="one JSON object per prompt")
    fields.add_fields(p, _GENERATE, _GENERATE_HELP, only=_GENERATE_HELP)
    common.add_model_args(p)
    p.set_defaults(func=cmd_steer)


def add_sweep(sub: argparse._SubParsersAction) -> None:
    """The ``sweep`` subcommand."""
    from workbench.constants import JUDGE_NAMES

    p = sub.add_parser("sweep", help="choose per-value P0 and CAA coefficient on the training prompts")
    p.add_argument("--values", default="all", help=common.VALUES_HELP)
    p.add_argument("--out", required=True, help="folder for sweep.csv and steering_defaults.json")
    p.add_argument("--vectors", default="out/vectors", help="folder of value vectors (probed and saved when absent)")
    fields.add_fields(p, _SWEEP, _SWEEP_HELP, only=_SWEEP_HELP,
                      overrides={"n_prompts": {"flag": "--n"}, "judge": {"choices": JUDGE_NAMES}})
    common.add_model_args(p)
    p.set_defaults(func=cmd_sweep)
