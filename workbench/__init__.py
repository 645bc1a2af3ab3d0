"""ConVA Workbench: find where a language model represents human values, and steer them.

Example:
    >>> import workbench as wb
    >>> model = wb.load_model()
    >>> vec = wb.probe_value(model, wb.load_pairs("benevolence"))
"""

__version__ = "0.1.0"

from workbench.activations import extract
from workbench.datasets import AuditResult, ContrastPair, DataError, audit, load_pairs, read_pairs, split_pairs
from workbench.model import fingerprint, hook_name, load_model
from workbench.probes import NoLayerQualifies, probe_value, select_layers
from workbench.values import VALUE_NAMES, VALUES, get_value
from workbench.vectors import ArtefactError, ValueVector, load_vector, save_vector

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
]
