"""Names the command line offers as choices, kept in a module that imports nothing heavy.

The modules that implement them (steering, generation, gates, the suite, judges, datasets) import
these tuples from here (the method names from the registry in :mod:`workbench.methods`), so each
choice lives in one place and ``workbench --help`` needs neither
torch nor transformers.

Example:
    >>> from workbench.constants import MODES
    >>> MODES
    ('prompt-once', 'per-step')
"""

from __future__ import annotations

from workbench.methods import GENERATION_METHODS, SUITE_METHODS

__all__ = [
    "DATASETS",
    "DEFAULT_GATE_KIND",
    "DEFAULT_JUDGE",
    "DEFAULT_MODEL",
    "DTYPES",
    "EXCLUDE_LAST",
    "FALLBACK_TOP",
    "GATE_KINDS",
    "GENERATION_METHODS",
    "JUDGE_NAMES",
    "MAX_NEW_TOKENS",
    "MMLU_SHOTS",
    "MODES",
    "PROBE_THRESHOLD",
    "SUITE_METHODS",
    "SWEEP_NEW_TOKENS",
    "SWEEP_PROMPTS",
]

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
DTYPES = ("auto", "float32", "bfloat16", "float16")
DATASETS = ("controlled", "naive")
MODES = ("prompt-once", "per-step")  # the first is the default (workbench.steering.SteeringSpec.mode)
GATE_KINDS = ("residual", "encoder")
DEFAULT_GATE_KIND = "encoder"  # what train_gate, the demo, the suite, steer and the widget train (docs/judges.md, Gates)
JUDGE_NAMES = ("touche", "llm", "pairs", "url")
DEFAULT_JUDGE = "touche"  # the offline value judge trained on Touché23 (independent of the steering pairs)
# How many best layers the pipelines (demo, suite, steer's on-demand probing, benchmarks) steer when no
# layer passes the accuracy threshold; probe_value itself defaults to 0 (raise instead).
FALLBACK_TOP = 3
EXCLUDE_LAST = 5  # never steer the last K layers (probes, plots, suite, reproduction)
PROBE_THRESHOLD = 0.9  # test accuracy a steering layer must exceed
MMLU_SHOTS = 5  # dev examples before each MMLU question
MAX_NEW_TOKENS = 48  # answer length of generate, the suite and the reproduction
SWEEP_PROMPTS = 12  # training prompts per value the sweep answers
SWEEP_NEW_TOKENS = 24  # answer length in the sweep
