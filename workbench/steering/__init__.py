"""ConVA steering: the spec, the closed-form minimal shift, the shift operators and their two hook backends.

- :mod:`~workbench.steering.spec`: :class:`SteeringSpec` and :func:`resolve_spec` (every default, checked);
- :mod:`~workbench.steering.closed_form`: eps = max(0, (logit(P0) - b - w.e) / ||w||);
- :mod:`~workbench.steering.shifts`: ConVA prompt-once / per-step and CAA as ``resid -> resid`` functions;
- :mod:`~workbench.steering.tl`: ``steer()``, TransformerLens hooks on ``blocks.{L}.hook_resid_post``;
- :mod:`~workbench.steering.torch_hooks`: ``steer_layers()``, PyTorch hooks on the decoder layers.

Example:
    >>> spec = SteeringSpec("conva-nogate", vector=vec, p0=0.95)
    >>> with steer(model, spec) as audit:
    ...     logits = model(tokens)
    >>> audit.layers[0].eps
"""

from workbench.constants import MODES
from workbench.steering.checks import MAX_COEF, check_coef, check_probability
from workbench.steering.closed_form import closed_form_eps
from workbench.steering.shifts import LayerRecord, SteeringRecord, layer_shifts, prepare
from workbench.steering.spec import SpecMismatch, SteeringSpec, as_spec, resolve_spec
from workbench.steering.tl import steer, steering_hooks
from workbench.steering.torch_hooks import generate_tokens, steer_layers

__all__ = ["MAX_COEF", "MODES", "LayerRecord", "SpecMismatch", "SteeringRecord", "SteeringSpec", "as_spec",
           "check_coef", "check_probability", "closed_form_eps", "generate_tokens", "layer_shifts", "prepare",
           "resolve_spec", "steer", "steer_layers", "steering_hooks"]
