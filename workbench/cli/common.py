"""Helpers shared by the ``workbench`` commands: argument checks, model loading, vectors on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.datasets import load_pairs
from workbench.values import is_known_value

VALUES_HELP = "comma-separated value names, or all for the 10 shipped values"
MODE_HELP = "prompt-once: shift computed on the prompt, added at every later position; per-step: recomputed each token"


def parse_layers(text: str | None, option: str = "--layers") -> list[int] | None:
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


def check_file_arg(given: str | Path | None, option: str, kind: str = "file") -> None:
    """A path option that names a missing file or folder is an error before any model is loaded."""
    from workbench.io import check_input_path

    if given:
        check_input_path(given, f"{option}", kind=kind)


def check_strengths(args: argparse.Namespace) -> None:
    """--p0, --coef and --max-new-tokens, before any model is loaded."""
    from workbench.steering import check_coef, check_probability

    if args.p0 is not None:
        check_probability("--p0", args.p0)
    if args.coef is not None:
        check_coef(args.coef, "--coef")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}.")


def load(args: argparse.Namespace) -> Any:
    """The model named by ``--model``/``--device``/``--dtype`` (or the one ``demo`` already loaded)."""
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


def check_value(found: str, wanted: str, what: str, fix: str) -> None:
    """Refuse an artefact made for another value than the one asked for (it would steer the wrong value)."""
    from workbench.values import get_value

    try:
        found_name = get_value(found).name
    except ValueError:
        found_name = found
    if found_name != wanted:
        raise ValueError(f"{what} was made for value {found_name!r}, not for {wanted!r}. Use the {wanted} file "
                         f"(or another --value), or make one for {wanted}: {fix}.")


def vector_for(model: Any, value: str, vectors: Path, dataset: str) -> Any:
    """The saved vector ``vectors/<value>.safetensors`` (checked against value and model), else probed and saved now."""
    from workbench.probes import FALLBACK_TOP, probe_value
    from workbench.vectors import check_model, load_vector, save_vector

    path = vectors / f"{value}.safetensors"
    if path.is_file():
        vec = load_vector(path)
        check_value(vec.value, value, f"Vector {path}", f"workbench probe --values {value} --out DIR")
        check_model(vec.meta, model, f"Vector {path.name}")
        return vec
    if not is_known_value(value):
        raise ValueError(f"No vector for {value!r} at {path}, and {value!r} has no shipped pairs to probe. Probe your "
                         f"pairs first: workbench probe --pairs FILE --value {value} --out {vectors.parent}")
    print(f"note: {path} not found; probing {value} now (run `workbench probe` to keep vectors)", file=sys.stderr)
    vec = probe_value(model, load_pairs(value, dataset), dataset=dataset, fallback_top=FALLBACK_TOP, progress=False)
    save_vector(vec, path)
    return vec


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model, --device and --dtype."""
    from workbench.constants import DEFAULT_MODEL, DTYPES

    p.add_argument("--model", default=DEFAULT_MODEL, help="embedded default, HF folder, .gguf file or cached hub name")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, ...")
    p.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="weights' dtype (auto: bfloat16 on CUDA, float32 elsewhere)")
