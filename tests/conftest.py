"""Shared fixtures: a tiny random model for unit tests, the embedded model once per session,
and a check after every test that no hook was left on either model."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest
from transformer_lens.hook_points import HookPoint

sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_model_folder

from workbench.model import load_model

_LOADED: list = []


def count_hooks(model) -> int:
    """Hooks currently registered on the model's hook points (where ``model.hooks()`` puts them).

    The bridge keeps a few permanent hooks of its own on the wrapped Hugging Face modules; those
    are not hook points and are not counted.
    """
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules() if isinstance(m, HookPoint))


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
    return load_model(folder, device="cpu")


@pytest.fixture(scope="session")
def embedded_model():
    model = load_model(device="cpu")
    _LOADED.append(model)
    return model


@pytest.fixture(autouse=True)
def no_leaked_hooks():
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
