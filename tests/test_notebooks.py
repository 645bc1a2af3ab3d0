"""Execute the three notebooks headless on the embedded model; any cell error fails the test.

To stay quick, notebooks 01 and 02 probe on a capped number of pairs (WORKBENCH_NB_PAIRS), and
notebook 03 regenerates the figures from a small hand-made results folder.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_figures import make_results

from workbench.figures import find_browser

pytestmark = pytest.mark.embedded

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    NotebookClient(book, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return book


def outputs(book: nbformat.NotebookNode) -> list:
    return [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Settings for the notebook kernels; returns the figures folder. Results start empty."""
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("WORKBENCH_NB_VALUES", "achievement,power,security")
    monkeypatch.setenv("WORKBENCH_NB_PAIRS", "24")
    monkeypatch.setenv("WORKBENCH_NB_TOKENS", "8")
    monkeypatch.setenv("WORKBENCH_FIGURE_FORMATS", "html,png" if find_browser() else "html")
    return tmp_path / "figures"


def test_01_value_vectors(env):
    book = execute("01_value_vectors")
    plotted = [o for o in outputs(book) if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotted) == 5  # audit, sweep, grid, heatmap, map
    assert any("Spearman rho" in o.get("text", "") for o in outputs(book))


def test_02_steering_demo(env):
    book = execute("02_steering_demo")
    kinds = {k for o in outputs(book) for k in o.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in kinds  # the widget
    assert "application/vnd.plotly.v1+json" in kinds  # the per-layer P_V plot from run_demo
    assert any("unsteered" in o.get("data", {}).get("text/html", "") for o in outputs(book))


def test_03_paper_figures(env, monkeypatch, tmp_path):
    results = make_results(tmp_path / "made")
    monkeypatch.setenv("WORKBENCH_RESULTS", str(results))
    execute("03_paper_figures")
    assert (env / "circumplex_agreement.json").is_file() and (env / "value_similarity.html").is_file()
    assert (env / "steering_audit.html").is_file() and (env / "evaluation.html").is_file()
    if find_browser():
        assert (env / "value_map.png").read_bytes()[:4] == b"\x89PNG"
