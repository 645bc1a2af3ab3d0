"""Every paper figure from a results folder, written as HTML, PNG and PDF (atomically).

Reads what ``workbench demo`` writes into ``results``: ``audit.csv``, ``accuracy.csv`` and
``vectors/<value>.safetensors`` (+ ``.json``); optionally ``results.csv`` (evaluation table,
``value,method,condition,csr,fluency,n``) and ``steer.jsonl`` (output of ``workbench steer --json``).
Figures whose inputs are absent are skipped with a note. Static export (PNG, PDF, SVG) goes through
kaleido, which drives a Chromium found on the PATH (Debian: ``apt-get install -y chromium``) or at
``$BROWSER_PATH``.

Example:
    >>> from pathlib import Path
    >>> paths = write_figures(Path("out"), Path("figures"), formats=("html", "png"))
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from workbench.io import atomic_path, atomic_write_text
from workbench.plots import (
    circumplex_agreement,
    plot_audit,
    plot_capability,
    plot_evaluation,
    plot_layer_sweep,
    plot_prompt_audit,
    plot_similarity,
    plot_sweep_grid,
    plot_value_map,
    similarity_map,
)
from workbench.vectors import ValueVector, load_vector

__all__ = ["FORMATS", "Figures", "build_figures", "find_browser", "write_figures"]

FORMATS = ("html", "png", "pdf", "svg")
_PNG_SCALE = 2  # PNGs at twice the layout size, sharp enough for print


@dataclass(frozen=True)
class Figures:
    """Figures built from a results folder, the notes on what was skipped, and the circumplex agreement."""

    figures: dict[str, go.Figure]
    notes: tuple[str, ...]
    agreement: dict[str, Any] | None


def find_browser() -> str | None:
    """Path of the Chromium kaleido will use, or None (checks ``$BROWSER_PATH``, then the PATH).

    Example:
        >>> find_browser()
        '/usr/bin/chromium'
    """
    from choreographer.browsers.chromium import Chromium

    return Chromium.find_browser(skip_local=False)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@contextlib.contextmanager
def _reading(path: Path, fix: str):
    """Turn any failure while reading ``path`` or drawing from it into a ``ValueError`` that names the file."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError, csv.Error) as err:
        if str(path) in str(err):
            raise
        detail = (f"column {err} is missing" if isinstance(err, KeyError)
                  else f"{type(err).__name__}: {str(err)[:200].rstrip('.')}")
        raise ValueError(f"{path}: cannot draw a figure from it ({detail}). {fix}") from None


def _table_figure(figs: dict[str, go.Figure], notes: list[str], path: Path, name: str,
                  plot: Callable[[list[dict[str, str]]], go.Figure], fix: str, skipped: str) -> None:
    """``figs[name]`` drawn by ``plot`` from the CSV table ``path``; a note ``path not found: skipped`` without it."""
    if path.is_file():
        with _reading(path, fix):
            figs[name] = plot(_read_csv(path))
    else:
        notes.append(f"{path} not found: {skipped}")


def _load_vectors(folder: Path) -> list[ValueVector]:
    return [load_vector(p) for p in sorted(folder.glob("*.safetensors"))]


def _first_steer_record(path: Path) -> dict[str, Any] | None:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{n}: not JSON ({err.msg}); write it with `workbench steer ... --json`.") from None
        if isinstance(rec, dict) and rec.get("layers"):
            return rec
    return None


@dataclass(frozen=True)
class _SteerAudit:
    gate_score: float | None
    fired: bool
    layers: tuple[dict[str, float], ...]


def build_figures(results: Path, layer: int | str = "middle") -> Figures:
    """Build every figure whose inputs exist in ``results``; ``layer`` picks the similarity-map layer.

    Example:
        >>> built = build_figures(Path("out"))
        >>> sorted(built.figures)
        ['accuracy_by_layer', 'accuracy_per_value', 'context_audit', 'value_map', 'value_similarity']
    """
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"Results folder {results} does not exist. Run `workbench demo --out {results}` first.")
    figs: dict[str, go.Figure] = {}
    notes: list[str] = []
    agreement = None

    _table_figure(figs, notes, results / "audit.csv", "context_audit", plot_audit, "Rewrite it with `workbench audit`.",
                  "skipping the context-control audit figure (run `workbench audit`).")

    vectors = _load_vectors(results / "vectors") if (results / "vectors").is_dir() else []
    accuracy_csv = results / "accuracy.csv"
    with _reading(accuracy_csv, "Rewrite it with `workbench probe`."):
        rows = _read_csv(accuracy_csv) if accuracy_csv.is_file() else []
        # vectors carry the steering layers too; use them when they cover every value in accuracy.csv
        covered = {v.value for v in vectors} >= {r["value"] for r in rows}
        sweep: Sequence[Any] = vectors if vectors and covered else rows
        if sweep:
            figs["accuracy_by_layer"] = plot_layer_sweep(sweep, split="test")
            figs["accuracy_per_value"] = plot_sweep_grid(sweep)
    if not sweep:
        notes.append(f"{accuracy_csv} and {results / 'vectors'} not found: skipping the accuracy curves "
                     "(run `workbench probe`).")

    if len(vectors) >= 3:
        sim = similarity_map(vectors, layer)
        figs["value_similarity"] = plot_similarity(sim)
        figs["value_map"] = plot_value_map(sim)
        others = {rule: round(circumplex_agreement(similarity_map(vectors, rule)), 4)
                  for rule in ("middle", "best-mean", "best") if rule != layer}
        agreement = {"spearman_rho": circumplex_agreement(sim), "layer_rule": sim.layer_rule,
                     "layers": dict(zip(sim.values, sim.layers, strict=True)), "values": list(sim.values),
                     "n_pairs": len(sim.values) * (len(sim.values) - 1) // 2,
                     "expected": "negative: adjacent values on the circumplex have more similar vectors",
                     "other_layer_rules": others}
    else:
        notes.append(f"fewer than 3 value vectors in {results / 'vectors'}: skipping the similarity heatmap, "
                     "the value map and the circumplex agreement (run `workbench probe --values all`).")

    _table_figure(figs, notes, results / "results.csv", "evaluation", plot_evaluation,
                  "Rewrite it with `workbench evaluate`.", "skipping the CSR/fluency comparison (run the evaluation first).")

    _table_figure(figs, notes, results / "capability.csv", "capability", plot_capability,
                  "Rewrite it with `workbench reproduce --stages capability`.",
                  "skipping the MMLU and perplexity figure (run the capability stage with --mmlu).")

    steer_jsonl = results / "steer.jsonl"
    with _reading(steer_jsonl, f"Rewrite it with `workbench steer ... --json > {steer_jsonl}`."):
        rec = _first_steer_record(steer_jsonl) if steer_jsonl.is_file() else None
        if rec is not None:
            audit = _SteerAudit(rec.get("gate_score"), bool(rec.get("fired", True)), tuple(rec["layers"]))
            # where eps > 0 the closed form lands exactly on P0, so P0 can be read off the record
            p0 = rec.get("p0") or next((float(r["p_after"]) for r in audit.layers if float(r["eps"]) > 0), None)
            figs["steering_audit"] = plot_prompt_audit(audit, p0=None if p0 is None else round(p0, 4),
                                                       title=rec.get("prompt"))
    if rec is None:
        notes.append(f"no steered prompt in {steer_jsonl}: skipping the per-layer steering audit "
                     f"(`workbench steer --value V --prompt ... --json > {steer_jsonl}`).")
    return Figures(figs, tuple(notes), agreement)


def _check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = formats.split(",")
    fmts = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ValueError(f"Unknown figure formats {bad or '[]'}; choose from {', '.join(FORMATS)}.")
    return fmts


def _write_html(figs: dict[str, go.Figure], out: Path) -> list[Path]:
    """One HTML file per figure, sharing one ``plotly.min.js`` beside them (works offline)."""
    from plotly.offline import get_plotlyjs

    js = out / "plotly.min.js"
    source = get_plotlyjs()
    if not js.is_file() or js.read_text(encoding="utf-8") != source:
        atomic_write_text(js, source)
    paths = [js]
    for name, fig in figs.items():
        html = pio.to_html(fig, include_plotlyjs="directory", full_html=True,
                           config={"toImageButtonOptions": {"format": "png", "scale": _PNG_SCALE, "filename": name}})
        paths.append(atomic_write_text(out / f"{name}.html", html))
    return paths


def _write_static(figs: dict[str, go.Figure], out: Path, formats: Sequence[str]) -> list[Path]:
    """All static images in one kaleido session (one browser start), each to a temp file, then renamed."""
    if find_browser() is None:
        raise FileNotFoundError(
            "Static figure export (png/pdf/svg) needs Chromium, and none was found on the PATH or at $BROWSER_PATH. "
            "Install it with `apt-get install -y chromium` (or `make install`), set BROWSER_PATH to a Chrome/Chromium "
            "binary, or pass formats=('html',) / `--formats html`."
        )
    jobs = [(name, fmt) for fmt in formats for name in figs]
    targets = [out / f"{name}.{fmt}" for name, fmt in jobs]
    with contextlib.ExitStack() as stack:
        tmps = [stack.enter_context(atomic_path(t)) for t in targets]
        pio.write_images([figs[name] for name, _ in jobs], tmps, format=[fmt for _, fmt in jobs],
                         scale=[_PNG_SCALE if fmt == "png" else 1 for _, fmt in jobs],
                         width=[figs[name].layout.width or 900 for name, _ in jobs],
                         height=[figs[name].layout.height or 520 for name, _ in jobs])
        empty = [t for t, tmp in zip(targets, tmps, strict=True) if tmp.stat().st_size == 0]
        if empty:
            raise RuntimeError(f"kaleido wrote empty files for {[str(p) for p in empty]}; no figure was replaced.")
    return targets


def write_figures(results: Path, out: Path, formats: Sequence[str] = ("html", "png", "pdf")) -> list[Path]:
    """Write every figure that ``results`` has inputs for into ``out``, in each of ``formats``.

    Also writes ``out/circumplex_agreement.json`` (Spearman ρ between pairwise cosine similarity of
    the value vectors and their circumplex distance). Returns the written paths.

    Example:
        >>> write_figures(Path("out"), Path("figures"), formats=("html",))
        [PosixPath('figures/plotly.min.js'), PosixPath('figures/context_audit.html'), ...]
    """
    fmts = _check_formats(formats)
    built = build_figures(Path(results))
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if built.agreement is not None:
        paths.append(atomic_write_text(out / "circumplex_agreement.json",
                                       json.dumps(built.agreement, indent=2) + "\n"))
        print(f"circumplex agreement: Spearman rho = {built.agreement['spearman_rho']:.3f} "
              f"({built.agreement['layer_rule']})")
    if not built.figures:
        return paths
    if "html" in fmts:
        paths += _write_html(built.figures, out)
    static = [f for f in fmts if f != "html"]
    if static:
        paths += _write_static(built.figures, out, static)
    return paths
