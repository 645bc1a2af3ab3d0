import torch

from workbench.model import cache_dir, fingerprint, hook_name, load_model, resolve_device


def test_hook_name():
    assert hook_name(3) == "blocks.3.hook_resid_post"


def test_resolve_device_auto_and_explicit():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert resolve_device("auto").type == expected


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


def test_fingerprint_stable_and_weight_sensitive(tiny_model, other_tiny_model, tiny_folder):
    assert fingerprint(tiny_model) == fingerprint(load_model(tiny_folder, device="cpu"))
    assert fingerprint(tiny_model) != fingerprint(other_tiny_model)


def test_bridge_logits_match_plain_hf(tiny_model):
    ids = tiny_model.tokenizer("values matter", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(tiny_model(ids), tiny_model.original_model(ids).logits, atol=1e-5)


def test_tokenizer_pads_left(tiny_model):
    assert tiny_model.tokenizer.padding_side == "left" and tiny_model.tokenizer.pad_token is not None


def test_missing_folder_is_clear_error(tmp_path):
    import pytest

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing.gguf")


def _devices(model) -> set[str]:
    return {t.device.type for t in [*model.parameters(), *model.buffers(), *model.original_model.parameters(),
                                    *model.original_model.buffers()]}


def test_every_weight_is_on_cfg_device_after_load(tiny_folder):
    model = load_model(tiny_folder, device="auto")
    assert _devices(model) == {torch.device(model.cfg.device).type}


def test_weights_follow_the_requested_device_not_just_cfg(tiny_folder, monkeypatch):
    """A device other than the CPU (meta stands in for CUDA here): the bridge must not report it while the
    weights stay on the CPU, which made the first forward on CUDA fail."""
    import workbench.model as wm

    monkeypatch.setattr(wm, "resolve_device", lambda device="auto": torch.device("meta"))
    model = wm.load_model(tiny_folder, device="meta", dtype="float32")
    assert str(model.cfg.device) == "meta" and _devices(model) == {"meta"}


def test_resolve_dtype():
    from workbench.model import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("bfloat16") == torch.bfloat16 and resolve_dtype(torch.float16) == torch.float16
    import pytest

    with pytest.raises(ValueError, match="Unknown dtype 'fp8'"):
        resolve_dtype("fp8")


def test_bfloat16_load(tiny_folder):
    model = load_model(tiny_folder, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.original_model.parameters()} == {torch.bfloat16}


def test_resolve_device_refuses_devices_this_machine_lacks(monkeypatch):
    import pytest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device, message in [("cuda", "no usable CUDA GPU"), ("cuda:7", "no usable CUDA GPU"),
                            ("mps", "MPS is not available"), ("foo", "Unknown device 'foo'"),
                            ("meta", "not supported")]:
        with pytest.raises(ValueError, match=message):
            resolve_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"has 1 CUDA GPU\(s\): cuda:0\.\.cuda:0"):
        resolve_device("cuda:7")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_a_missing_device_is_refused_before_any_weights_load(tiny_folder, monkeypatch):
    import pytest

    import workbench.model as wm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(wm, "_load_hf", lambda *a, **k: pytest.fail("weights loaded before the device was checked"))
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        wm.load_model(tiny_folder, device="cuda")


def test_importing_the_package_turns_hugging_face_offline_unless_allowed():
    import os
    import subprocess
    import sys

    code = ("import os, workbench.model, huggingface_hub.constants as c; "
            "print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'), c.HF_HUB_OFFLINE)")
    base = {k: v for k, v in os.environ.items()
            if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "WORKBENCH_ALLOW_DOWNLOADS")}

    def run(**extra):
        env = {**base, **extra}
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    assert run() == ["1", "1", "True"]
    assert run(WORKBENCH_ALLOW_DOWNLOADS="1") == ["None", "None", "False"]


def test_fingerprint_is_computed_once_per_model_until_its_weights_change(tiny_folder, monkeypatch):
    import workbench.model as wm

    model = load_model(tiny_folder, device="cpu")
    calls = []
    compute = wm._compute_fingerprint
    monkeypatch.setattr(wm, "_compute_fingerprint", lambda m: calls.append(m) or compute(m))
    first = wm.fingerprint(model)
    assert wm.fingerprint(model) == first and len(calls) == 1  # the second call reads no weight
    weight = next(model.original_model.parameters())
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.add_(1.0)  # an in-place edit: seen, recomputed
    assert wm.fingerprint(model) != first and len(calls) == 2
    with torch.no_grad():
        weight.copy_(saved)
    assert wm.fingerprint(model) == first and len(calls) == 3
    fresh = load_model(tiny_folder, device="cpu")  # another object: its own entry
    assert wm.fingerprint(fresh) == first and len(calls) == 4


def test_cli_reports_a_missing_device_or_a_broken_model_folder_as_an_error(tiny_folder, tmp_path, monkeypatch, capsys):
    import shutil

    from workbench.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base = ["probe", "--values", "power", "--out", str(tmp_path / "out")]
    for device, message in [("cuda", "no usable CUDA GPU"), ("cuda:7", "no usable CUDA GPU"),
                            ("foo", "Unknown device 'foo'")]:
        assert main([*base, "--model", str(tiny_folder), "--device", device]) == 2
        err = capsys.readouterr().err
        assert any(line.startswith("error: ") and message in line for line in err.splitlines())
    broken = shutil.copytree(tiny_folder, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    assert main([*base, "--model", str(broken), "--device", "cpu"]) == 2
    assert "error: Could not load the model" in capsys.readouterr().err
    empty = shutil.copytree(tiny_folder, tmp_path / "noweights")
    for weights in empty.glob("*.safetensors"):
        weights.unlink()
    assert main([*base, "--model", str(empty), "--device", "cpu"]) == 2
    assert "error: Could not load the model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
