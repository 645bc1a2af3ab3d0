"""Model and export commands: ``models`` (the embedded models) and ``export-gguf`` (llama.cpp control vectors)."""

from __future__ import annotations

import argparse

from workbench.cli import common


def cmd_models(args: argparse.Namespace) -> int:
    """``workbench models``: each embedded model's size, install and conversion state and licence."""
    from workbench.registry import REGISTRY, status

    print(f"{'name':40s} {'GGUF':>8s} {'installed':>9s} {'cached':>6s}  licence     upstream")
    for key, entry in REGISTRY.items():
        st = status(entry)
        print(f"{key:40s} {entry.size / 1e9:6.2f}GB {'yes' if st.installed else 'no':>9s} "
              f"{'yes' if st.converted else 'no':>6s}  {entry.licence:11s} {entry.hf_name}")
        if not st.installed:
            print(f"  install: {entry.install_command()}")
    return 0


def cmd_export_gguf(args: argparse.Namespace) -> int:
    """``workbench export-gguf``: a value vector as a llama.cpp control vector."""
    from workbench.export import export_gguf
    from workbench.vectors import load_vector

    layers = common.parse_layers(args.layers)
    path = export_gguf(load_vector(args.vector), args.out, args.strength, layers=layers, model_hint=args.model_hint)
    print(f"wrote {path}")
    return 0


def add_models(sub: argparse._SubParsersAction) -> None:
    """The ``models`` subcommand."""
    p = sub.add_parser("models", help="the embedded models: size, installed, converted, licence")
    p.set_defaults(func=cmd_models)


def add_export_gguf(sub: argparse._SubParsersAction) -> None:
    """The ``export-gguf`` subcommand."""
    p = sub.add_parser("export-gguf", help="export a value vector as a llama.cpp control vector (GGUF)")
    p.add_argument("--vector", required=True, help="a .safetensors value vector")
    p.add_argument("--strength", type=float, required=True, help="scale of the unit direction at each layer")
    p.add_argument("--out", required=True, help="the .gguf file to write")
    p.add_argument("--layers", default=None, help="comma-separated layers (default: the vector's steering layers)")
    p.add_argument("--model-hint", default=None, help="architecture name written into the GGUF (default: from the vector)")
    p.set_defaults(func=cmd_export_gguf)
