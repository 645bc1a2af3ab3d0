"""ConVA Workbench: find where a language model represents human values, and steer them.

Example:
    >>> import workbench as wb
    >>> model = wb.load_model()
    >>> vec = wb.probe_value(model, wb.load_pairs("benevolence"))
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names load on first use (PEP 562), so `import workbench` and `workbench --help` stay fast:
# torch and transformers are imported only when a name that needs them is touched.
_EXPORTS = {
    "extract": "workbench.activations",
    "AuditResult": "workbench.datasets", "ContrastPair": "workbench.datasets", "DataError": "workbench.datasets",
    "as_pairs": "workbench.datasets", "audit": "workbench.datasets", "load_pairs": "workbench.datasets",
    "read_pairs": "workbench.datasets", "split_pairs": "workbench.datasets",
    "fingerprint": "workbench.model", "hook_name": "workbench.model", "load_model": "workbench.model",
    "NoLayerQualifies": "workbench.probes", "probe_value": "workbench.probes", "select_layers": "workbench.probes",
    "VALUES": "workbench.values", "VALUE_NAMES": "workbench.values", "get_value": "workbench.values",
    "value_name": "workbench.values",
    "ArtefactError": "workbench.vectors", "ValueVector": "workbench.vectors", "load_vector": "workbench.vectors",
    "save_vector": "workbench.vectors",
}

if TYPE_CHECKING:
    from workbench.activations import extract
    from workbench.datasets import AuditResult, ContrastPair, DataError, as_pairs, audit, load_pairs, read_pairs, split_pairs
    from workbench.model import fingerprint, hook_name, load_model
    from workbench.probes import NoLayerQualifies, probe_value, select_layers
    from workbench.values import VALUE_NAMES, VALUES, get_value, value_name
    from workbench.vectors import ArtefactError, ValueVector, load_vector, save_vector


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "VALUES",
    "VALUE_NAMES",
    "ArtefactError",
    "AuditResult",
    "ContrastPair",
    "DataError",
    "NoLayerQualifies",
    "ValueVector",
    "__version__",
    "as_pairs",
    "audit",
    "extract",
    "fingerprint",
    "get_value",
    "hook_name",
    "load_model",
    "load_pairs",
    "load_vector",
    "probe_value",
    "read_pairs",
    "save_vector",
    "select_layers",
    "split_pairs",
    "value_name",
]
