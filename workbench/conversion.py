"""The one-time GGUF -> fp32 safetensors conversion cache, safe against kills and concurrent runs.

A conversion is written under a temporary folder beside its target, gets a COMPLETE marker listing
every file and its size, and is renamed onto the target at the end, so a half-written model is never
loaded; temporary folders of dead runs are removed.

Example:
    >>> folder = convert_gguf(Path("model.gguf"), cache_dir() / "models" / "model-fp32")
    >>> conversion_complete(folder)
    True
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import torch

__all__ = ["conversion_complete", "convert_gguf"]


COMPLETE = "COMPLETE"
_OWNER = ".owner"
_STALE_SECONDS = 6 * 3600  # a temporary conversion folder this old, of no live process, is garbage


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _file_record(path: Path) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def _file_ok(path: Path, rec: object) -> bool:
    if isinstance(rec, int):  # a marker from before checksums: the size only
        return path.is_file() and path.stat().st_size == rec
    if not isinstance(rec, dict) or not path.is_file():
        return False
    st = path.stat()
    if st.st_size != rec.get("size"):
        return False
    # Unchanged since written (same mtime): trusted without reading it; any write since is hashed again,
    # so same-size damage is caught (~1 s per GB) before the weights are loaded.
    return st.st_mtime_ns == rec.get("mtime_ns") or _sha256(path) == rec.get("sha256")


def conversion_complete(target: Path) -> bool:
    """True if ``target`` is a finished conversion: its COMPLETE marker is there and every file it lists
    has the recorded size and, if it was written to since, the recorded sha256. Anything else (no
    marker, a missing, cut or altered file) must be converted again."""
    marker = target / COMPLETE
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict):
        return (target / "config.json").is_file()  # a marker from an older version: the bare GGUF name
    return all(_file_ok(target / name, rec) for name, rec in info["files"].items())


def _owner_alive(folder: Path) -> bool:
    """Whether the process that created a temporary conversion folder may still be working in it."""
    try:
        host, pid = (folder / _OWNER).read_text(encoding="utf-8").split()
        if host == socket.gethostname():
            os.kill(int(pid), 0)
            return True
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        pass
    try:
        return time.time() - folder.stat().st_mtime < _STALE_SECONDS
    except OSError:
        return False


def _remove_stale_temps(target: Path) -> None:
    """Delete temporary folders of interrupted conversions of ``target`` (never loaded, only removed)."""
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.is_dir() and not _owner_alive(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


def _dequantise(gguf: Path, folder: Path) -> None:
    """Load a GGUF checkpoint with transformers (~40 s) and save it into ``folder`` as fp32 safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.save_pretrained(folder)
    tok.save_pretrained(folder)


def _install(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` folder onto ``target``; a broken ``target`` is moved aside first,
    a complete one (another process finished first) is kept."""
    for _ in range(5):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if conversion_complete(target):
                return
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        try:
            os.rename(target, aside / "broken")  # atomic: nobody sees a half-deleted target
        except FileNotFoundError:
            pass
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"Could not put the converted model in place at {target}. Delete that folder and try again.")


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise a GGUF checkpoint into an fp32 safetensors folder, atomically.

    The folder is written under a temporary name beside ``target``, gets a COMPLETE marker listing
    every file and its size, and is renamed onto ``target`` at the end. An interrupted or concurrent
    conversion therefore never leaves a half-written model where it would be loaded; a ``target``
    without a valid marker is rebuilt, and temporary folders of dead runs are removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if conversion_complete(target):  # another process finished it meanwhile
        return target
    _remove_stale_temps(target)
    if target.exists():
        import warnings

        warnings.warn(f"{target} is an incomplete model conversion (interrupted run?); converting again.", stacklevel=3)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        (tmp / _OWNER).write_text(f"{socket.gethostname()} {os.getpid()}", encoding="utf-8")
        _dequantise(gguf, tmp)
        (tmp / _OWNER).unlink()
        files = {p.relative_to(tmp).as_posix(): _file_record(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        if "config.json" not in files:
            raise OSError(f"Converting {gguf} produced no config.json; the GGUF file may be damaged. Reinstall it.")
        (tmp / COMPLETE).write_text(json.dumps({"source": gguf.name, "files": files}, indent=1), encoding="utf-8")
        _install(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
