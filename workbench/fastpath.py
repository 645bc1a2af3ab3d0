"""Moved to :mod:`workbench.steering.torch_hooks` (PyTorch forward hooks on decoder layers); kept for one release.

Example:
    >>> from workbench.steering import steer_layers, generate_tokens
"""

from workbench.steering.torch_hooks import generate_tokens, steer_layers

__all__ = ["generate_tokens", "steer_layers"]
