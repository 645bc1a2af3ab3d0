"""Small file helpers shared by every module that writes artefacts: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "check_input_path", "check_output_path", "text_hash"]


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


def check_input_path(path: str | Path, what: str = "File", kind: str = "file",
                     error: type[ValueError] = ValueError) -> Path:
    """Return ``path`` if it is an existing ``kind`` (``"file"`` or ``"folder"``), else raise a clear error.

    ``FileNotFoundError`` when nothing is there (or a symbolic link points nowhere); ``ValueError`` saying
    what is there instead: a folder where a file is expected (or the reverse), a FIFO, socket or device,
    a symbolic-link loop, or a path that cannot be read (as ``error``, a ``ValueError`` subclass).
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{what} {path} is a symbolic link loop (the link points back at itself). "
                        "Fix or remove the link.") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                raise FileNotFoundError(f"{what} {path} is a broken symbolic link (to {os.readlink(path)!r}, "
                                        "which does not exist).") from None
            raise FileNotFoundError(f"{what} {path} does not exist.") from None
        raise error(f"{what} {path} cannot be read ({err.strerror}).") from None
    if kind == "folder":
        if not stat.S_ISDIR(st.st_mode):
            raise error(f"{what} {path} is a file, not a folder. Pass the folder itself.")
        return path
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a folder, not a file. Pass the path of the file itself.")
    if not stat.S_ISREG(st.st_mode):
        sort = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise error(f"{what} {path} is {sort}, not a regular file. Pass a file saved on disk.")
    return path


def check_output_path(path: str | Path, what: str = "Output file") -> Path:
    """Raise a clear ``ValueError`` if ``path`` cannot be written as a file, before anything is written.

    Refused: ``path`` is a folder, a parent of it is a file, or the nearest existing parent folder is not
    writable. Missing parent folders are fine (they are created on write).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder. Pass the path of the file to write.")
    parent = path.parent
    while True:
        if parent.is_dir():
            break
        if parent.exists() or parent.is_symlink():
            raise ValueError(f"Cannot write {what.lower()} {path}: {parent} is a file, not a folder. "
                             "Choose a path under a folder.")
        if parent == parent.parent:
            break
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"Cannot write {what.lower()} {path}: the folder {parent} is not writable "
                         "(permission denied). Choose another path.")
    return path


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
