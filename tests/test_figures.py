import json
import math

import pytest
import torch

from workbench import figures
from workbench.figures import build_figures, find_browser, write_figures
from workbench.tables import write_csv
from workbench.values import VALUE_NAMES, get_value
from workbench.vectors import ValueVector, save_vector

N_LAYERS, D = 6, 8


def make_results(folder, values=VALUE_NAMES, evaluation=True, steer=True):
    """A tiny results folder in the layout `workbench demo` writes (plus the optional inputs)."""
    write_csv(folder / "audit.csv", ["value", "dataset", "unique_share"],
              [(v, ds, s) for v in values for ds, s in (("controlled", 0.2), ("naive", 0.7))])
    write_csv(folder / "accuracy.csv", ["value", "layer", "train_acc", "test_acc"],
              [(v, layer, 1.0, 0.5 + 0.08 * layer) for v in values for layer in range(N_LAYERS)])
    for v in values:
        angle = 2 * math.pi * get_value(v).position / len(VALUE_NAMES)
        w = torch.zeros(N_LAYERS, D)
        w[:, 0], w[:, 1], w[:, 2] = math.cos(angle), math.sin(angle), 0.1
        vec = ValueVector(v, w, torch.zeros(N_LAYERS), torch.zeros(N_LAYERS, D), torch.ones(N_LAYERS),
                          torch.linspace(0.6, 0.95, N_LAYERS), (2, 3), {"model_name": "tiny"})
        save_vector(vec, folder / "vectors" / f"{v}.safetensors")
    if evaluation:
        write_csv(folder / "results.csv", ["value", "method", "condition", "csr", "fluency", "n"],
                  [(v, m, "default", p, 0.9, 10) for v in values[:3] for m, p in (("none", 0.1), ("conva", 0.8))])
        write_csv(folder / "capability.csv", ["method", "benchmark", "score", "n"],
                  [("none", "mmlu_5shot", 0.46, 300), ("conva", "mmlu_5shot", 0.45, 300)])
    if steer:
        rec = {"prompt": "Should I go for the title?", "unsteered": "a", "steered": "b", "gate_score": 0.97,
               "fired": True, "layers": [{"layer": 2, "p_before": 0.3, "p_after": 0.95, "eps": 2.0},
                                         {"layer": 3, "p_before": 0.96, "p_after": 0.96, "eps": 0.0}]}
        (folder / "steer.jsonl").write_text(json.dumps(rec) + "\n")
    return folder


ALL = ["accuracy_by_layer", "accuracy_per_value", "capability", "context_audit", "evaluation", "steering_audit", "value_map",
       "value_similarity"]


def test_build_figures_all_inputs(tmp_path):
    built = build_figures(make_results(tmp_path))
    assert sorted(built.figures) == ALL and built.notes == ()
    assert built.agreement["spearman_rho"] < -0.9 and built.agreement["layer_rule"] == "middle layer"
    # P0 is read off the record: p_after where eps > 0
    assert any(s.y0 == 0.95 for s in built.figures["steering_audit"].layout.shapes)


def test_write_figures_html_and_agreement(tmp_path, capsys):
    out = tmp_path / "figs"
    paths = write_figures(make_results(tmp_path / "res"), out, formats=("html",))
    names = sorted(p.name for p in paths)
    assert names == sorted([*(f"{n}.html" for n in ALL), "plotly.min.js", "circumplex_agreement.json"])
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    html = (out / "value_similarity.html").read_text()
    assert 'src="plotly.min.js"' in html and "Cosine similarity" in html
    agreement = json.loads((out / "circumplex_agreement.json").read_text())
    assert agreement["spearman_rho"] < -0.9 and agreement["n_pairs"] == 45
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files
    assert "Spearman rho" in capsys.readouterr().out


def test_missing_inputs_are_skipped_with_a_note(tmp_path, capsys):
    res = make_results(tmp_path / "res", values=("power", "security"), evaluation=False, steer=False)
    paths = write_figures(res, tmp_path / "figs", formats="html")
    err = capsys.readouterr().err
    assert "results.csv not found" in err and "capability.csv not found" in err and "steer.jsonl" in err
    assert "fewer than 3 value vectors" in err
    assert not (tmp_path / "figs" / "circumplex_agreement.json").exists()
    assert {p.stem for p in paths} == {"plotly.min", "context_audit", "accuracy_by_layer", "accuracy_per_value"}


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="workbench demo"):
        write_figures(tmp_path / "nope", tmp_path / "figs")
    with pytest.raises(ValueError, match="Unknown figure formats"):
        write_figures(make_results(tmp_path), tmp_path / "figs", formats=("gif",))


def test_missing_chromium_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "find_browser", lambda: None)
    with pytest.raises(FileNotFoundError, match="apt-get install -y chromium"):
        write_figures(make_results(tmp_path / "res", evaluation=False, steer=False), tmp_path / "figs",
                      formats=("png",))


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed (apt-get install -y chromium or make install); "
                                                   "static export through kaleido needs one")
def test_png_and_pdf_export_are_real_files(tmp_path):
    out = tmp_path / "figs"
    paths = write_figures(make_results(tmp_path / "res", evaluation=False, steer=False), out, formats=("png", "pdf"))
    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} == {"context_audit", "accuracy_by_layer", "accuracy_per_value", "value_similarity",
                                      "value_map"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    for p in out.glob("*.pdf"):
        assert p.read_bytes()[:5] == b"%PDF-", p
    assert len(paths) == 1 + 2 * 5 and not list(out.glob(".*.tmp"))


@pytest.mark.parametrize(("name", "content"), [
    ("accuracy.csv", "value,layer\npower,0\n"),  # no test_acc column
    ("audit.csv", "value,dataset\npower,controlled\n"),  # no unique_share column
    ("results.csv", "value,method\npower,none\n"),
    ("steer.jsonl", '{"layers": [{"layer": 2}]}\n'),  # a layer record without p_after / eps
    ("accuracy.csv", b"value,layer,train_acc,test_acc\n\xff\xfe\n"),  # not UTF-8
])
def test_errors_in_an_input_file_name_that_file(tmp_path, name, content):
    make_results(tmp_path, values=VALUE_NAMES[:3])
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match="cannot draw a figure from it") as info:
        build_figures(tmp_path)
    assert str(path) in str(info.value)
