"""Execute the three notebooks headless on the embedded model; any cell error fails the test."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from workbench.figures import find_browser

pytestmark = pytest.mark.embedded

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One results folder for the module: notebook 03 runs a small demo into it, 01 and 02 then reuse its vectors."""
    return tmp_path_factory.mktemp("nb_results")


def execute(name: str) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), f"{name} is committed with outputs"
    NotebookClient(book, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return book


def outputs(book: nbformat.NotebookNode) -> list:
    return [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.fixture
def env(monkeypatch, results, tmp_path):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(results))
    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("WORKBENCH_NB_VALUES", "achievement,power,security")
    monkeypatch.setenv("WORKBENCH_NB_TOKENS", "8")
    monkeypatch.setenv("WORKBENCH_FIGURE_FORMATS", "html,png" if find_browser() else "html")
    return tmp_path / "figures"


def test_03_paper_figures(env, results):
    execute("03_paper_figures")
    assert (env / "circumplex_agreement.json").is_file() and (env / "value_similarity.html").is_file()
    assert (results / "vectors" / "achievement.safetensors").is_file()
    if find_browser():
        assert (env / "value_map.png").read_bytes()[:4] == b"\x89PNG"


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
