"""The evaluation suite's configuration and result, and the columns of the tables it writes.

Example:
    >>> cfg = SuiteConfig(values=("power",), methods=("none", "conva"), out=Path("out/eval"), limit=4)
    >>> run_suite(model, cfg).to_frame("capability")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.constants import EXCLUDE_LAST, MAX_NEW_TOKENS, MMLU_SHOTS, MODES
from workbench.methods import SUITE_METHODS

__all__ = [
    "CAPABILITY_COLUMNS", "CONDITIONS", "GATE_OPEN_SHARE", "RESULT_COLUMNS", "SuiteConfig", "SuiteResult", "is_mmlu_accuracy",
]

CONDITIONS = ("plain", "negative-prompt")

@dataclass(frozen=True)
class SuiteConfig:
    values: tuple[str, ...]
    methods: tuple[str, ...] = SUITE_METHODS
    out: Path = Path("out/eval")
    vectors: Path | None = None  # folder of controlled vectors (probed and saved here when absent)
    prompts: Path | None = None  # folder with <value>.csv/.jsonl/.txt; default: shipped held-out prompts
    mmlu: Path | None = None
    wikitext: Path | None = None
    mmlu_n: int = 1000
    mmlu_shots: int = MMLU_SHOTS
    limit: int | None = None
    p0: float | None = None  # None: the per-value default from the sweep (workbench.sweep)
    coef: float | None = None  # None: likewise
    defaults: Path | None = None  # a steering-defaults file from `workbench sweep`; None: the shipped one
    mode: str = MODES[0]  # the SteeringSpec default
    exclude_last: int = EXCLUDE_LAST
    max_new_tokens: int = MAX_NEW_TOKENS
    batch_size: int = 8
    seed: int = 0
    judge: str | None = None  # one of JUDGE_NAMES; None: "url" when judge_url is set, else "touche"
    judge_url: str | None = None
    judge_model: str | None = None  # url: the endpoint's model name; llm: a load_model source (default: research model)
    progress: bool = True
    conditions: tuple[str, ...] = CONDITIONS  # plain, and under the negative system prompt

    def __post_init__(self) -> None:
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"Unknown or no conditions {bad}; use any of {', '.join(CONDITIONS)}.")
        if self.limit is not None and (isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit must be a positive number of prompts per value (or None for all), got {self.limit!r}.")


@dataclass(frozen=True)
class SuiteResult:
    results: tuple[tuple[str, str, str, float, float, int], ...]
    capability: tuple[tuple[str, str, float, int], ...]
    summary: str = field(repr=False, default="")

    def to_frame(self, table: str = "results") -> Any:
        """``results`` (one row per value x method x condition) or ``capability`` as a pandas DataFrame.

        Example:
            >>> result.to_frame().pivot_table(index="value", columns="method", values="csr")
        """
        from workbench.tables import require_pandas

        tables = {"results": (self.results, RESULT_COLUMNS), "capability": (self.capability, CAPABILITY_COLUMNS)}
        if table not in tables:
            raise ValueError(f"Unknown table {table!r}; use 'results' or 'capability'.")
        rows, columns = tables[table]
        return require_pandas().DataFrame(list(rows), columns=list(columns))


RESULT_COLUMNS = ("value", "method", "condition", "csr", "fluency", "n")
CAPABILITY_COLUMNS = ("method", "benchmark", "score", "n")
GATE_OPEN_SHARE = "_gate_open_share"  # suffix of the row giving the share of MMLU questions that open the gate


def is_mmlu_accuracy(benchmark: str) -> bool:
    """Whether a ``capability.csv`` benchmark is an MMLU accuracy (``mmlu_5shot``), not the gate-open share."""
    return benchmark.startswith("mmlu") and not benchmark.endswith(GATE_OPEN_SHARE)
