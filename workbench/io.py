"""Small file helpers shared by every module that writes artefacts: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "text_hash"]


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import (os.umask can only be read by setting it): files written through
# atomic_path get the usual permissions (0o666 & ~umask), not mkstemp's private 0o600.
_FILE_MODE = 0o666 & ~_read_umask()


def _fsync(path: Path) -> None:
    """Flush ``path``'s content to disk, so a crash right after the rename cannot leave it empty."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (e.g. certain network mounts) refuse fsync on a read-only handle
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or exception never leaves a half-written ``path`` behind: on error the temporary file is
    removed and an existing ``path`` keeps its old content. Concurrent writers of the same ``path``
    each write their own temporary file; readers see one complete version or the other.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if not os.path.isfile(tmp):
            raise FileNotFoundError(f"Nothing was written to the temporary file for {path}; {path} is left unchanged.")
        os.chmod(tmp, _FILE_MODE)
        _fsync(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.isfile(tmp) or os.path.islink(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def text_hash(texts: Iterable[str]) -> str:
    """Order-sensitive SHA-256 (first 16 hex digits) of a sequence of strings (lone surrogates allowed)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]
