"""Commands on pairs and probes: ``audit``, ``probe``, ``demo`` and ``generate-pairs``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli import common, fields
from workbench.constants import FALLBACK_TOP
from workbench.datasets import DATASETS, audit, load_pairs
from workbench.readout import READ_FORMATS
from workbench.tables import write_csv
from workbench.values import resolve_values

_ACCURACY_COLUMNS = ("value", "layer", "train_acc", "test_acc")


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


def cmd_audit(args: argparse.Namespace) -> int:
    """``workbench audit``: the context-control audit of the shipped pairs -> OUT/audit.csv."""
    rows = []
    for value in resolve_values(args.values):
        for dataset in DATASETS:
            result = audit(load_pairs(value, dataset), dataset)
            rows.append((value, dataset, result.unique_share))
            print(f"{value:15s} {dataset:10s} unique_share={result.unique_share:.2f}")
    path = write_csv(Path(args.out) / "audit.csv", ["value", "dataset", "unique_share"], rows)
    print(f"wrote {path}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    """``workbench probe``: per-layer probes -> OUT/accuracy.csv and OUT/vectors/<value>.safetensors."""
    from workbench.probes import NoLayerQualifies, check_c, probe_value
    from workbench.vectors import save_vector

    c = check_c(args.c)  # before the model and the extraction
    own = _own_pairs(args)
    values = (own[0].value,) if own else resolve_values(args.values)
    out = Path(args.out)
    _merge_accuracy(out / "accuracy.csv", [], set())  # a foreign or unreadable table: refused before the work
    model = common.load(args)
    rows, failed = [], []
    for value in values:
        pairs = own or load_pairs(value, args.dataset)
        try:
            vec = probe_value(model, pairs, dataset="custom" if own else args.dataset, seed=args.seed, threshold=args.threshold,
                              exclude_last=args.exclude_last, shuffle_labels=args.shuffle_labels,
                              fallback_top=args.fallback_top, cache=args.cache, c=c,
                              read_format=args.read_format)
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
    common.check_file_arg(pairs_file, "--pairs")
    pairs = read_pairs(pairs_file, value=value)
    names = sorted({p.value for p in pairs})
    if len(names) > 1:
        raise ValueError(f"{pairs_file} holds pairs for several values {names}; give --value NAME or split the file.")
    return pairs


def cmd_demo(args: argparse.Namespace) -> int:
    """``workbench demo``: audit, probes, gates, a small evaluation and the figures on one loaded model."""
    from workbench.demo import finish_demo
    from workbench.figures import write_figures
    from workbench.progress import spinner

    if args.eval_prompts < 0:
        raise ValueError(f"--eval-prompts must be >= 0 (0 skips the evaluation), got {args.eval_prompts}.")
    code = cmd_audit(args)
    if code:
        return code
    args.loaded_model = common.load(args)  # one load for the probes, the gates, the example and the evaluation
    code = cmd_probe(args)
    if code:
        return code
    finish_demo(args.loaded_model, Path(args.out), list(resolve_values(args.values)), evaluate=args.eval_prompts > 0,
                limit=args.eval_prompts)
    figures = Path(args.figures) if args.figures else Path(args.out) / "figures"
    with spinner(f"writing the figures to {figures}"):
        paths = write_figures(Path(args.out), figures)
    print(f"wrote {len(paths)} figure files to {figures}")
    return 0


def cmd_generate_pairs(args: argparse.Namespace) -> int:
    """``workbench generate-pairs``: context-controlled pairs from a chat endpoint or the local model."""
    import os

    from workbench.chat import ChatClient, ResponderClient
    from workbench.pairgen import generate_pairs

    if args.local:
        from workbench.evaluation.server import model_responder

        client = ResponderClient(model_responder(common.load(args)))
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


_PROBE = "workbench.probes:probe_value"  # read without importing (the defaults live in its signature)
_PROBE_HELP = {
    "shuffle_labels": "control run with permuted training labels",
    "threshold": "test accuracy a steering layer must exceed",
    "exclude_last": "never steer the last K layers",
    "fallback_top": "when no layer passes the threshold, steer the K best layers (with a warning) instead of failing",
    "seed": "seed of the train/test split and the probes",
    "c": "inverse regularisation of the probes; smaller gives a smaller |w|, so larger ConVA shifts at a P0",
    "cache": "cache activations on disk",
    "read_format": "where each pair sentence is read: bare, or as a user turn at its end or at the assistant start",
}


def _add_probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="controlled",
                   help="shipped pair set: controlled (context-matched sides) or naive (the ablation)")
    fields.add_fields(p, _PROBE, _PROBE_HELP, only=_PROBE_HELP,
                      overrides={"read_format": {"choices": READ_FORMATS}})


def add_audit(sub: argparse._SubParsersAction) -> None:
    """The ``audit`` subcommand."""
    p = sub.add_parser("audit", help="context-control audit of the shipped pairs")
    p.add_argument("--values", default="all", help=common.VALUES_HELP)
    p.add_argument("--out", required=True, help="folder for audit.csv")
    p.set_defaults(func=cmd_audit)


def add_probe(sub: argparse._SubParsersAction) -> None:
    """The ``probe`` subcommand."""
    p = sub.add_parser("probe", help="per-layer probes and value vectors")
    p.add_argument("--values", default="all", help=common.VALUES_HELP)
    p.add_argument("--out", required=True, help="folder for accuracy.csv and vectors/<value>.safetensors")
    p.add_argument("--pairs", default=None,
                   help="probe your own pairs instead of the shipped ones: JSONL (as generate-pairs writes), CSV or JSON "
                        "with positive/negative fields")
    p.add_argument("--value", default=None,
                   help="name of the concept in --pairs, one of the 10 values or your own such as honesty "
                        "(default: the file's value field)")
    _add_probe_args(p)
    common.add_model_args(p)
    p.set_defaults(func=cmd_probe)


def add_demo(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` subcommand."""
    from workbench.demo import EVAL_PROMPTS

    p = sub.add_parser("demo", help="the main job: audit and probes for all values")
    p.add_argument("--values", default="all", help=common.VALUES_HELP)
    p.add_argument("--out", default="out", help="folder for the audit, accuracy table and vectors")
    _add_probe_args(p)
    common.add_model_args(p)
    p.add_argument("--figures", default=None, help="where the figures go (HTML, PNG, PDF; default: OUT/figures)")
    p.add_argument("--eval-prompts", type=int, default=EVAL_PROMPTS,
                   help="held-out prompts per value in the small evaluation (results.csv, summary.md; 0 skips it)")
    p.set_defaults(func=cmd_demo, fallback_top=FALLBACK_TOP)


def add_generate_pairs(sub: argparse._SubParsersAction) -> None:
    """The ``generate-pairs`` subcommand."""
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
    common.add_model_args(p)
    p.set_defaults(func=cmd_generate_pairs)
