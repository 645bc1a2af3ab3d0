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
