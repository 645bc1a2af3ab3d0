"""Table outputs: to_frame() on the result dataclasses (pandas optional) and CSV rows."""

from __future__ import annotations

import sys

import pytest

from workbench.datasets import audit, load_pairs
from workbench.evaluation.suite import CAPABILITY_COLUMNS, RESULT_COLUMNS, SuiteResult
from workbench.gate import GateReport
from workbench.generation import GenerationResult, PromptAudit
from workbench.tables import require_pandas, rows_frame


def test_suite_result_frames_match_the_csv_columns():
    result = SuiteResult(results=(("power", "conva", "plain", 0.5, 0.9, 10), ("power", "none", "plain", 0.2, 1.0, 10)),
                         capability=(("none", "mmlu", 0.3, 100),))
    frame = result.to_frame()
    assert list(frame.columns) == list(RESULT_COLUMNS) and frame["csr"].tolist() == [0.5, 0.2]
    assert frame.pivot_table(index="value", columns="method", values="csr").loc["power", "conva"] == 0.5
    assert list(result.to_frame("capability").columns) == list(CAPABILITY_COLUMNS)
    with pytest.raises(ValueError, match="Unknown table"):
        result.to_frame("other")


def test_generation_gate_and_audit_frames():
    layers = ({"layer": 1, "p_before": 0.2, "p_after": 0.9, "eps": 3.0}, {"layer": 2, "p_before": 0.95, "p_after": 0.95,
                                                                           "eps": 0.0})
    out = GenerationResult(("a", "b"), (PromptAudit(0.8, True, layers), PromptAudit(0.1, False, ())))
    frame = out.to_frame()
    assert frame.to_dict("list") == {"text": ["a", "b"], "gate_score": [0.8, 0.1], "fired": [True, False],
                                     "n_layers": [1, 0], "max_eps": [3.0, 0.0]}
    report = GateReport("power", "residual", 0.6, 0.8, 0.05, 20, 40)
    assert report.to_frame().iloc[0].to_dict()["false_trigger_rate"] == 0.05
    row = audit(load_pairs("power")).to_frame().iloc[0]
    assert row["value"] == "power" and 0 <= row["unique_share"] <= 1
    assert len(rows_frame([report, report])) == 2


def test_missing_pandas_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas"):
        require_pandas()
    with pytest.raises(ImportError, match=r"pip install pandas"):
        SuiteResult((), ()).to_frame()
