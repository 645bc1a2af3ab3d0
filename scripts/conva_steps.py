"""Where ConVA's closed-form step is zero: per value, the held-out prompts on which P_V >= P0 already.

ConVA shifts a layer only where the probe's P_V is below P0, by the smallest step that lifts it to
P0. This loads the vectors and swept P0s a ``workbench reproduce`` run saved (``OUT/vectors/``,
``OUT/steering_defaults.json``), reads each value's held-out prompts without a system prompt (the
suite's plain condition, prompt-once), and prints as a Markdown table how many prompts get no shift
at any layer, the mean number of shifted layers a prompt, and the largest step.

Example:
    .venv/bin/python scripts/conva_steps.py out/repro --values benevolence,power \
        --model embedded:qwen2.5-coder-1.5b-instruct
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.generation import generate
from workbench.model import load_model
from workbench.prompts import load_value_prompts
from workbench.values import resolve_values
from workbench.vectors import load_vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the results folder with vectors/ and steering_defaults.json")
    parser.add_argument("--values", required=True, help="comma-separated values")
    parser.add_argument("--model", required=True, help="the model the vectors were probed on")
    args = parser.parse_args()
    defaults = json.loads((args.out / "steering_defaults.json").read_text(encoding="utf-8"))["values"]
    model = load_model(args.model)
    print("| value | P0 | steering layers | prompts with no shift | mean shifted layers | max eps |")
    print("|---|---|---|---|---|---|")
    for value in resolve_values(args.values):
        vec = load_vector(args.out / "vectors" / f"{value}.safetensors", model)
        prompts = load_value_prompts(value)[1]
        frame = generate(model, prompts, vector=vec, method="conva-nogate", p0=defaults[value]["p0"],
                         max_new_tokens=1, batch_size=len(prompts)).to_frame()
        print(f"| {value} | {defaults[value]['p0']} | {len(vec.layers)} | {(frame.n_layers == 0).sum()}/{len(prompts)} | "
              f"{frame.n_layers.mean():.2f} | {frame.max_eps.max():.3g} |", flush=True)


if __name__ == "__main__":
    main()
