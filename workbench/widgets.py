"""An ipywidgets steering demo: pick a value, P0, g0, layers, mode and method, type a prompt, press Run,
and compare the unsteered and steered answers with the gate score and the per-layer P_V plot.

The work is done by plain functions (:func:`run_demo`, :func:`answers_html`), which the tests call
directly; :class:`SteeringDemo` is a thin layer of controls around them. Gates saved by ``workbench demo``
(:func:`load_gates`) are used as they are; others are trained on first use and cached in the demo object.

Example:
    >>> import workbench as wb
    >>> from workbench.widgets import SteeringDemo, run_demo
    >>> model = wb.load_model()
    >>> vectors = load_vectors("out/vectors", model=model)          # every value `workbench demo` probed
    >>> demo = SteeringDemo(model, vectors, gates=load_gates("out/gates", model=model))
    >>> demo.widget                       # displays the controls in a notebook
    >>> result = run_demo(model, vectors, {}, "achievement", "Should I enter the contest?")
"""

from __future__ import annotations

import html
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from workbench.constants import DEFAULT_GATE_KIND, GATE_KINDS
from workbench.defaults import steering_defaults
from workbench.gate import Gate, train_gate
from workbench.generation import generate
from workbench.methods import GENERATION_METHODS
from workbench.plots import plot_prompt_audit
from workbench.steering import MODES, SteeringSpec
from workbench.values import VALUE_NAMES, get_value, is_known_value, value_name
from workbench.vectors import ValueVector, load_vector

__all__ = ["DEMO_METHODS", "DemoResult", "SteeringDemo", "answers_html", "load_gates", "load_vectors", "parse_layers",
           "run_demo"]

DEMO_METHODS = tuple(m for m in GENERATION_METHODS if m != "none")
WIDGET_NEW_TOKENS = 32  # shorter answers than generate's, so the widget responds quickly


@dataclass(frozen=True, eq=False)
class DemoResult:
    """One demo run: both answers, what the gate said, and the per-layer audit with its figure."""

    value: str
    prompt: str
    method: str
    mode: str
    p0: float
    g0: float | None
    unsteered: str
    steered: str
    gate_score: float | None
    fired: bool
    layers: tuple[dict[str, float], ...]
    figure: go.Figure | None
    coef: float | None = None  # the CAA coefficient (method caa only)


def parse_layers(spec: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """``"12, 13,14"`` or ``[12, 13]`` -> ``(12, 13, 14)``; empty or None -> None (the vector's layers).

    Example:
        >>> parse_layers("3, 5")
        (3, 5)
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        parts = [p for p in spec.replace(";", ",").replace(" ", ",").split(",") if p]
        try:
            layers = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"Layers {spec!r} are not whole numbers; write them like '12,13,14' "
                             "or leave the box empty for the vector's steering layers.") from None
    else:
        layers = tuple(int(x) for x in spec)
    return layers or None


def load_vectors(folder: str | Path, model: Any | None = None) -> dict[str, ValueVector]:
    """All value vectors in ``folder`` (``<value>.safetensors`` + ``.json``), keyed by value name.

    Example:
        >>> vectors = load_vectors("out/vectors", model=model)
    """
    folder = Path(folder)
    paths = sorted(folder.glob("*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"No value vectors in {folder}. Run `workbench probe --out {folder.parent}` first.")
    vectors = {}
    for p in paths:
        vec = load_vector(p, model=model)
        vectors[vec.value] = vec
    return vectors


def load_gates(folder: str | Path, model: Any | None = None) -> dict[str, Gate]:
    """The gates saved in ``folder`` (``workbench demo`` writes ``OUT/gates``), keyed ``"<value>:<kind>"``
    as :func:`run_demo` caches them; an absent folder gives ``{}``.

    Example:
        >>> gates = load_gates("out/gates", model=model)
    """
    from workbench.gate import load_gate

    return {f"{g.value}:{g.kind}": g for g in (load_gate(p, model=model) for p in sorted(Path(folder).glob("*.safetensors")))}


def _circumplex_order(name: str) -> tuple[int, str]:
    """Sort key: the 10 values in circumplex order, then concepts of your own by name."""
    return (get_value(name).position, name) if is_known_value(name) else (len(VALUE_NAMES), name)


def run_demo(
    model: Any,
    vectors: Mapping[str, ValueVector],
    gates: MutableMapping[str, Gate],
    value: str,
    prompt: str,
    p0: float | None = None,
    g0: float | None = None,
    mode: str | None = None,
    method: str = "conva",
    layers: str | Sequence[int] | None = None,
    max_new_tokens: int = WIDGET_NEW_TOKENS,
    gate_kind: str = DEFAULT_GATE_KIND,
    coef: float | None = None,
) -> DemoResult:
    """Answer ``prompt`` unsteered and steered toward ``value``; the callback behind the Run button.

    ``gates`` caches trained gates by value (a gate is trained on first use with method ``conva``).
    The settings make one :class:`workbench.steering.SteeringSpec`; unset ones are its defaults:
    ``p0=None`` and ``coef=None`` the value's swept P0 and CAA coefficient, ``g0=None`` the gate's
    calibrated threshold, ``layers=None`` the vector's steering layers.

    Example:
        >>> r = run_demo(model, vectors, {}, "achievement", "Should I enter the contest?", p0=0.95)
        >>> r.fired, r.gate_score
        (True, 0.97)
    """
    name = value_name(value)
    if name not in vectors:
        raise ValueError(f"No value vector for {name!r}; the demo has {sorted(vectors)}. "
                         f"Probe it first (workbench probe --values {name}).")
    if not prompt or not prompt.strip():
        raise ValueError("The prompt is empty: type a question in the prompt box.")
    if method not in DEMO_METHODS:
        raise ValueError(f"Unknown method {method!r}; use one of {DEMO_METHODS}.")
    if gate_kind not in GATE_KINDS:
        raise ValueError(f"Unknown gate kind {gate_kind!r}; use one of {GATE_KINDS}.")
    spec = SteeringSpec(method, p0=p0, g0=g0, mode=mode or SteeringSpec.mode, coef=coef, value=name)
    vector = vectors[name]
    chosen = parse_layers(layers)
    if chosen is not None:
        vector = vector.with_layers(chosen)
    gate = None
    if method == "conva":
        key = f"{name}:{gate_kind}"
        if key not in gates:
            gates[key] = train_gate(model if gate_kind == "residual" else None, name, kind=gate_kind)
        gate = gates[key]
    spec = spec.replace(vector=vector, gate=gate).resolve(model)
    common = {"max_new_tokens": max_new_tokens}
    plain = generate(model, [prompt], method="none", **common)
    steered = generate(model, [prompt], spec, **common)
    audit = steered.audits[0]
    figure = plot_prompt_audit(audit, p0=spec.p0, title=f"{name}: {prompt}") if audit.layers else None
    return DemoResult(name, prompt, method, spec.mode, spec.p0, spec.g0 if gate is not None else g0,
                      plain.texts[0], steered.texts[0], audit.gate_score, audit.fired, audit.layers, figure,
                      spec.coef if spec.kind.shift == "caa" else None)


def answers_html(result: DemoResult) -> str:
    """The two answers side by side, with the gate line above them, as an HTML snippet.

    Example:
        >>> answers_html(result)[:4]
        '<div'
    """
    esc = html.escape
    if result.gate_score is None:
        gate = f"no gate (method {esc(result.method)}): steering {'applied' if result.fired else 'not applied'}"
    else:
        verdict = "open: steering fired" if result.fired else "closed: answer left unsteered"
        gate = f"gate score <b>{result.gate_score:.3f}</b> vs g0 {result.g0:.3f} &rarr; {verdict}"
    strength = f"coef {result.coef:g}" if result.coef is not None else f"P0 {result.p0:g}"
    box = ("flex:1; border:1px solid #ccc; border-radius:6px; padding:8px; white-space:pre-wrap; "
           "font-family:sans-serif; min-height:4em")
    return (
        f'<div style="font-family:sans-serif"><div style="margin-bottom:6px">Value <b>{esc(result.value)}</b>, '
        f"method {esc(result.method)} ({esc(result.mode)}), {strength}. {gate}</div>"
        f'<div style="display:flex; gap:12px">'
        f'<div style="{box}"><div style="color:#D55E00"><b>unsteered</b></div>{esc(result.unsteered)}</div>'
        f'<div style="{box}"><div style="color:#0072B2"><b>steered</b></div>{esc(result.steered)}</div>'
        f"</div></div>"
    )


class SteeringDemo:
    """The widget: controls, a Run button, the answers side by side and the per-layer P_V plot.

    The value list holds every value in ``vectors`` (``value`` picks the first shown); ``gates`` are
    used instead of training (keys as :func:`load_gates` gives them).

    Example:
        >>> demo = SteeringDemo(model, vectors, gates=load_gates("out/gates", model=model))
        >>> demo.widget        # show it
        >>> demo.run()         # same as pressing Run
    """

    def __init__(self, model: Any, vectors: Mapping[str, ValueVector], prompt: str = "",
                 max_new_tokens: int = WIDGET_NEW_TOKENS, gates: Mapping[str, Gate] | None = None,
                 value: str | None = None) -> None:
        import ipywidgets as w

        if not vectors:
            raise ValueError("The demo needs at least one value vector; pass {value: ValueVector}.")
        self.model = model
        self.vectors = dict(vectors)
        self.gates: dict[str, Gate] = dict(gates or {})  # "<value>:<kind>" -> gate, e.g. from load_gates()
        self.last: DemoResult | None = None
        style = {"description_width": "90px"}
        wide = w.Layout(width="340px")
        options = sorted(self.vectors, key=_circumplex_order)
        self.value = w.Dropdown(options=options, value=value_name(value) if value else options[0],
                                description="value", style=style, layout=wide)
        # up to the sweep's highest P0 (0.9999), so every swept default shows unclamped
        self.p0 = w.FloatSlider(value=steering_defaults(self.value.value).p0, min=0.5, max=0.9999, step=0.0001,
                                readout_format=".4f", description="P0", style=style, layout=wide)
        self.calibrated = w.Checkbox(value=True, description="calibrated g0", indent=False)
        self.g0 = w.FloatSlider(value=0.5, min=0.01, max=0.99, step=0.01, description="g0", style=style,
                                layout=wide, disabled=True)
        self.layers = w.Text(value="", placeholder="vector's steering layers", description="layers",
                             style=style, layout=wide)
        self.mode = w.Dropdown(options=list(MODES), value=SteeringSpec.mode, description="mode", style=style, layout=wide)
        self.method = w.Dropdown(options=list(DEMO_METHODS), value="conva", description="method", style=style,
                                 layout=wide)
        self.tokens = w.IntSlider(value=max_new_tokens, min=4, max=128, step=4, description="new tokens",
                                  style=style, layout=wide)
        self.prompt = w.Textarea(value=prompt, placeholder="Ask something where the value is at stake ...",
                                 description="prompt", style=style, layout=w.Layout(width="720px", height="70px"))
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.status = w.HTML("")
        self.answers = w.HTML("")
        self.plot = w.Output()
        self.calibrated.observe(self._toggle_g0, names="value")
        self.value.observe(self._value_default_p0, names="value")
        self.button.on_click(lambda _: self.run())
        controls = w.HBox([w.VBox([self.value, self.method, self.mode, self.layers]),
                           w.VBox([self.p0, w.HBox([self.calibrated]), self.g0, self.tokens])])
        self.widget = w.VBox([controls, self.prompt, w.HBox([self.button, self.status]), self.answers, self.plot])

    def _toggle_g0(self, change: dict[str, Any]) -> None:
        self.g0.disabled = bool(change["new"])

    def _value_default_p0(self, change: dict[str, Any]) -> None:
        self.p0.value = steering_defaults(change["new"]).p0  # the swept default; the user may move it

    def run(self) -> DemoResult | None:
        """Run with the current control values; shows the result, or the error in red."""
        from IPython.display import display

        self.button.disabled = True
        self.status.value = "<i>generating ...</i>"
        try:
            result = run_demo(self.model, self.vectors, self.gates, self.value.value, self.prompt.value,
                              p0=self.p0.value, g0=None if self.calibrated.value else self.g0.value,
                              mode=self.mode.value, method=self.method.value, layers=self.layers.value or None,
                              max_new_tokens=self.tokens.value)
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            self.status.value = f'<span style="color:#b00020">error: {html.escape(str(err))}</span>'
            return None
        finally:
            self.button.disabled = False
        self.last = result
        self.status.value = ""
        self.answers.value = answers_html(result)
        self.plot.clear_output(wait=True)
        with self.plot:
            if result.figure is not None:
                display(result.figure)
            else:
                print("No layer was steered (gate closed, or a method without a per-layer audit).")
        return result
