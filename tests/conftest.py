"""Shared fixtures: a tiny random model for unit tests, the embedded model once per session,
and a check after every test that no hook was left on the session's models (hook points and the
decoder layers' PyTorch hooks alike: :func:`helpers.count_hooks`). Shared helpers live in ``helpers.py``."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import count_hooks
from tiny import make_tiny_model_folder

from workbench.model import load_model

_LOADED: list = []


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return make_tiny_model_folder(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model(tiny_folder):
    model = load_model(tiny_folder, device="cpu")
    _LOADED.append(model)
    return model


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory):
    """Same architecture as ``tiny_model`` but different random weights."""
    folder = make_tiny_model_folder(tmp_path_factory.mktemp("tiny2") / "model", seed=1)
    model = load_model(folder, device="cpu")
    _LOADED.append(model)
    return model


@pytest.fixture(scope="session")
def embedded_model():
    model = load_model(device="cpu")
    _LOADED.append(model)
    return model


__all__ = ["count_hooks", "fifo_at"]  # count_hooks: re-exported for older imports (use helpers)


@pytest.fixture(autouse=True)
def no_leaked_hooks():
    """After every test: the session's models carry exactly the hooks they had before it."""
    before = [count_hooks(m) for m in _LOADED]
    yield
    after = [count_hooks(m) for m in _LOADED[: len(before)]]
    assert after == before, f"hooks left on a model after the test: {before} -> {after}"


@contextlib.contextmanager
def fifo_at(path: Path, release_after: float = 5.0):
    """Make a FIFO at ``path``; a reader that opens it (code that should have refused it) is released with an
    empty read after ``release_after`` seconds, so a regression fails the test instead of hanging it."""
    os.mkfifo(path)

    def release() -> None:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO where nobody reads: nothing to do
        except OSError:
            pass

    timer = threading.Timer(release_after, release)
    timer.daemon = True
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()
