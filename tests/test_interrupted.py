"""Interrupted and concurrent work: the model conversion cache, the activation cache, atomic writes.

A killed run must never leave something that is later loaded as if it were complete, a failed write
must leave the previous file intact, and two processes sharing a cache folder must both get correct,
readable results. The model conversion runs through a fake converter (the real one takes ~40 s).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import workbench.conversion as conversion
import workbench.io
import workbench.model as wm
from workbench.activations import extract
from workbench.io import atomic_path, atomic_write_text
from workbench.vectors import ArtefactError, ValueVector, load_vector, save_vector

TEXTS = ["hello there", "a longer sentence about values and choices", "x", "values matter"]
TARGET_NAME = "smollm2-135m-instruct-fp32"

fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method")


def run_in_processes(target, arg_lists: list[tuple], timeout: float = 240.0) -> None:
    """Run ``target(*args)`` in one forked process per entry, at the same time; all must exit with 0."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=args) for args in arg_lists]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(1.0, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
        p.join()
    assert not alive, "a worker process hung"
    assert [p.exitcode for p in procs] == [0] * len(procs)


# ---------------------------------------------------------------- model conversion cache


@pytest.fixture
def fake_conversion(monkeypatch, tmp_path):
    """A cache in tmp_path, a fake GGUF, and a fake converter that records its calls."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF fake")
    calls: list[Path] = []
    state = {"fail_after_files": False, "delay": 0.0}

    def fake_dequantise(source: Path, folder: Path) -> None:
        calls.append(folder)
        assert folder.name.startswith(f".{TARGET_NAME}.")  # always written under a temporary name
        (folder / "config.json").write_text(json.dumps({"model_type": "llama", "source": source.name}))
        (folder / "model.safetensors").write_bytes(b"\x01" * 4096)
        time.sleep(state["delay"])
        if state["fail_after_files"]:
            raise RuntimeError("converter killed half-way")

    monkeypatch.setattr(conversion, "_dequantise", fake_dequantise)
    monkeypatch.setattr(wm, "_embedded_gguf_path", lambda key=None: gguf)
    target = tmp_path / "cache" / "models" / TARGET_NAME
    return target, calls, state


def _temp_folders(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*")) if target.parent.exists() else []


def test_first_use_converts_once_then_reuses(fake_conversion):
    target, calls, _ = fake_conversion
    assert wm.embedded_model_folder() == target
    assert len(calls) == 1 and (target / "COMPLETE").is_file() and (target / "config.json").is_file()
    marker = json.loads((target / "COMPLETE").read_text())
    assert {n: r["size"] for n, r in marker["files"].items()} == {"config.json": (target / "config.json").stat().st_size,
                                                                    "model.safetensors": 4096}
    assert marker["files"]["model.safetensors"]["sha256"] == hashlib.sha256(b"\x01" * 4096).hexdigest()
    assert wm.embedded_model_folder() == target
    assert len(calls) == 1
    assert _temp_folders(target) == []


def test_target_without_marker_is_rebuilt_not_loaded(fake_conversion):
    target, calls, _ = fake_conversion
    target.mkdir(parents=True)
    (target / "config.json").write_text("{half")  # what a run killed before the marker could leave
    (target / "stale.bin").write_bytes(b"old")
    with pytest.warns(UserWarning, match="incomplete model conversion"):
        assert wm.embedded_model_folder() == target
    assert len(calls) == 1
    assert json.loads((target / "config.json").read_text())["model_type"] == "llama"
    assert not (target / "stale.bin").exists()
    assert _temp_folders(target) == []


def test_marker_with_a_cut_file_is_rebuilt(fake_conversion):
    target, calls, _ = fake_conversion
    wm.embedded_model_folder()
    with (target / "model.safetensors").open("r+b") as fh:
        fh.truncate(100)  # the disk filled up, or a copy was cut
    with pytest.warns(UserWarning, match="incomplete"):
        wm.embedded_model_folder()
    assert len(calls) == 2 and (target / "model.safetensors").stat().st_size == 4096


def test_same_size_damage_of_the_cached_weights_is_rebuilt(fake_conversion):
    target, calls, _ = fake_conversion
    wm.embedded_model_folder()
    (target / "model.safetensors").write_bytes(b"\x02" * 4096)  # same size, other bytes
    with pytest.warns(UserWarning, match="incomplete"):
        wm.embedded_model_folder()
    assert len(calls) == 2 and (target / "model.safetensors").read_bytes() == b"\x01" * 4096


def test_a_rewrite_with_the_same_bytes_is_kept(fake_conversion):
    target, calls, _ = fake_conversion
    wm.embedded_model_folder()
    (target / "model.safetensors").write_bytes(b"\x01" * 4096)  # touched (new mtime), same content: hashed, kept
    assert wm.embedded_model_folder() == target and len(calls) == 1


def test_a_size_only_marker_of_the_previous_version_is_accepted(fake_conversion):
    target, calls, _ = fake_conversion
    wm.embedded_model_folder()
    (target / "COMPLETE").write_text(json.dumps({"files": {"model.safetensors": 4096}}))
    assert wm.embedded_model_folder() == target and len(calls) == 1


def test_marker_listing_a_missing_file_is_rebuilt(fake_conversion):
    target, calls, _ = fake_conversion
    wm.embedded_model_folder()
    (target / "model.safetensors").unlink()
    with pytest.warns(UserWarning, match="incomplete"):
        wm.embedded_model_folder()
    assert len(calls) == 2 and (target / "model.safetensors").is_file()


def test_marker_of_an_older_version_is_accepted(fake_conversion):
    target, calls, _ = fake_conversion
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / "COMPLETE").write_text("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert wm.embedded_model_folder() == target
    assert calls == []


def test_leftover_temp_folder_is_never_loaded_and_is_cleaned(fake_conversion):
    target, calls, _ = fake_conversion
    target.parent.mkdir(parents=True)
    # A temporary folder of a killed run that even holds a marker: it must not be used as the model.
    dead = target.parent / f".{TARGET_NAME}.dead1234.partial"
    dead.mkdir()
    (dead / "config.json").write_text("{}")
    (dead / "COMPLETE").write_text(json.dumps({"files": {"config.json": 2}}))
    (dead / ".owner").write_text(f"{os.uname().nodename} 999999999")  # no such process
    # A temporary folder of a live conversion (this process) is left alone.
    live = target.parent / f".{TARGET_NAME}.live5678.partial"
    live.mkdir()
    (live / ".owner").write_text(f"{os.uname().nodename} {os.getpid()}")
    # An old temporary folder without an owner file (older versions wrote none).
    old = target.parent / f".{TARGET_NAME}.old9999"
    old.mkdir()
    os.utime(old, (time.time() - 7 * 3600, time.time() - 7 * 3600))

    assert wm.embedded_model_folder() == target
    assert len(calls) == 1 and calls[0] not in (dead, live, old)
    assert not dead.exists() and not old.exists() and live.exists()
    assert json.loads((target / "config.json").read_text())["model_type"] == "llama"


def test_converter_crash_leaves_nothing_behind(fake_conversion):
    target, calls, state = fake_conversion
    state["fail_after_files"] = True
    with pytest.raises(RuntimeError, match="killed half-way"):
        wm.embedded_model_folder()
    assert not target.exists() and _temp_folders(target) == []
    state["fail_after_files"] = False
    assert wm.embedded_model_folder() == target and len(calls) == 2
    assert (target / "COMPLETE").is_file()


def test_converter_crash_keeps_a_previous_good_folder_out_of_harms_way(fake_conversion):
    """A broken target is only replaced once the new conversion is complete."""
    target, _, state = fake_conversion
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    state["fail_after_files"] = True
    with pytest.warns(UserWarning, match="incomplete"), pytest.raises(RuntimeError):
        wm.embedded_model_folder()
    assert (target / "config.json").read_text() == "{}" and _temp_folders(target) == []


def _convert_in_child(queue_path: str) -> None:
    folder = wm.embedded_model_folder()
    ok = wm.conversion_complete(folder)
    Path(queue_path).write_text(f"{folder} {ok}")
    os._exit(0 if ok else 3)


@fork
def test_two_processes_converting_at_once(fake_conversion, tmp_path):
    target, _, state = fake_conversion
    state["delay"] = 0.5  # both processes are inside the conversion at the same time
    outs = [tmp_path / f"out{i}" for i in range(2)]
    run_in_processes(_convert_in_child, [(str(o),) for o in outs])
    assert [o.read_text() for o in outs] == [f"{target} True"] * 2
    assert wm.conversion_complete(target) and _temp_folders(target) == []


# ---------------------------------------------------------------- activation cache


def _cache_file(folder: Path) -> Path:
    files = list(folder.glob("*.safetensors"))
    assert len(files) == 1, files
    return files[0]


@pytest.mark.parametrize(
    "damage",
    ["truncated", "empty", "random bytes", "wrong shape", "wrong dtype", "NaN values", "no acts tensor"],
)
def test_damaged_activation_cache_entry_is_rebuilt(tiny_model, tmp_path, damage):
    first = extract(tiny_model, TEXTS, cache=tmp_path, progress=False)
    entry = _cache_file(tmp_path)
    n, layers, d = first.shape
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "random bytes":
        entry.write_bytes(os.urandom(3000))
    elif damage == "wrong shape":
        save_file({"acts": torch.zeros(n - 1, layers, d)}, str(entry))
    elif damage == "wrong dtype":
        save_file({"acts": first.double()}, str(entry))
    elif damage == "NaN values":
        save_file({"acts": torch.full_like(first, float("nan"))}, str(entry))
    else:
        save_file({"other": first}, str(entry))
    with pytest.warns(UserWarning, match=r"Activation cache entry .* is damaged"):
        again = extract(tiny_model, TEXTS, cache=tmp_path, progress=False)
    assert torch.equal(again, first)
    assert torch.equal(load_file(str(entry))["acts"], first)  # the entry itself was repaired
    assert list(tmp_path.glob(".*.tmp")) == []


def test_leftover_temp_files_in_the_cache_do_not_interfere(tiny_model, tmp_path):
    first = extract(tiny_model, TEXTS, cache=tmp_path, progress=False)
    entry = _cache_file(tmp_path)
    (tmp_path / f".{entry.name}.abc123.tmp").write_bytes(b"half-written by a killed run")
    assert torch.equal(extract(tiny_model, TEXTS, cache=tmp_path, progress=False), first)


def _extract_in_child(model, folder: str, reference: torch.Tensor, rounds: int) -> None:
    torch.set_num_threads(1)  # OpenMP is not fork-safe with a thread pool inherited from the parent
    ok = True
    for _ in range(rounds):
        for entry in Path(folder).glob("*.safetensors"):
            entry.unlink(missing_ok=True)  # force both processes to compute and write the same key
        acts = extract(model, TEXTS, cache=folder, progress=False)
        ok = ok and acts.shape == reference.shape and torch.allclose(acts, reference, atol=1e-5)
    os._exit(0 if ok else 3)


@fork
def test_two_processes_writing_the_same_activation_cache_key(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    reference = extract(tiny_model, TEXTS, progress=False)
    folder = tmp_path / "shared"
    run_in_processes(_extract_in_child, [(tiny_model, str(folder), reference, 8)] * 2)
    assert torch.allclose(load_file(str(_cache_file(folder)))["acts"], reference, atol=1e-5)
    assert torch.allclose(extract(tiny_model, TEXTS, cache=folder, progress=False), reference, atol=1e-5)
    assert list(folder.glob(".*")) == []


# ---------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_inside_atomic_path_leaves_no_file(tmp_path, error):
    target = tmp_path / "out.txt"
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise error
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_exception_inside_atomic_path_keeps_the_previous_file(tmp_path, error):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "previous content")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("new but unfinished")
        raise error
    assert target.read_text() == "previous content"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_when_the_block_removes_its_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "previous content")
    with pytest.raises(FileNotFoundError, match="Nothing was written"), atomic_path(target) as tmp:
        tmp.unlink()
    assert target.read_text() == "previous content" and list(tmp_path.iterdir()) == [target]


def test_atomic_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = atomic_write_text(tmp_path / "out.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0o600


def _vector(scale: float = 1.0) -> ValueVector:
    g = torch.Generator().manual_seed(0)
    return ValueVector("power", torch.randn(4, 8, generator=g) * scale, torch.zeros(4), torch.zeros(4, 8),
                       torch.ones(4), torch.ones(4), (1,), {})


def test_failed_save_keeps_the_previous_artefact(tmp_path, monkeypatch):
    path = save_vector(_vector(), tmp_path / "v")
    before = (path.read_bytes(), path.with_suffix(".json").read_bytes())

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_vector(_vector(2.0), path)
    monkeypatch.undo()
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.json", "v.safetensors"]
    assert torch.equal(load_vector(path).weight, _vector().weight)


def test_crash_between_the_two_renames_is_detected(tmp_path, monkeypatch):
    path = save_vector(_vector(), tmp_path / "v")
    real_replace = os.replace
    calls = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after the sidecar was renamed
        real_replace(src, dst)

    monkeypatch.setattr(workbench.io.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_vector(_vector(2.0), path)
    monkeypatch.undo()
    with pytest.raises(ArtefactError, match="checksum differs"):
        load_vector(path)


def test_unserialisable_metadata_fails_before_writing(tmp_path):
    vec = _vector()
    bad = ValueVector(vec.value, vec.weight, vec.bias, vec.mean_diff, vec.train_acc, vec.test_acc, vec.layers,
                      {"threshold": float("nan"), "when": object()})
    with pytest.raises(ValueError, match="metadata is not plain JSON"):
        save_vector(bad, tmp_path / "v")
    assert list(tmp_path.iterdir()) == []


def _write_many(path: str, char: str, size: int, rounds: int) -> None:
    for _ in range(rounds):
        atomic_write_text(path, char * size)
    os._exit(0)


@fork
def test_two_processes_writing_one_atomic_file(tmp_path):
    path = tmp_path / "shared.txt"
    size = 300_000
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(path), c, size, 60)) for c in "ab"]
    for p in procs:
        p.start()
    seen = set()
    while any(p.is_alive() for p in procs):
        if path.exists():
            text = path.read_text()
            assert text in ("a" * size, "b" * size), f"torn read of {len(text)} characters"
            seen.add(text[0])
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert path.read_text() in ("a" * size, "b" * size)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]
    assert seen  # the reader did see the file while it was being rewritten
