import json
import pickle

import pytest
import torch

from workbench.model import fingerprint, model_info
from workbench.vectors import ArtefactError, ValueVector, load_vector, save_vector


def make_vector(model, layers=(1, 2)) -> ValueVector:
    n, d = model.cfg.n_layers, model.cfg.d_model
    g = torch.Generator().manual_seed(0)
    meta = {**model_info(model), "model_fingerprint": fingerprint(model), "hook_site": "hook_resid_post"}
    return ValueVector("power", torch.randn(n, d, generator=g), torch.randn(n, generator=g),
                       torch.randn(n, d, generator=g), torch.rand(n, generator=g), torch.rand(n, generator=g),
                       tuple(layers), meta)


def test_round_trip(tiny_model, tmp_path):
    vec = make_vector(tiny_model)
    path = save_vector(vec, tmp_path / "power")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    back = load_vector(path, model=tiny_model)
    for name in ("weight", "bias", "mean_diff", "train_acc", "test_acc"):
        assert torch.equal(getattr(back, name), getattr(vec, name))
    assert back.layers == vec.layers and back.value == "power"
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in ("format_version", "model_fingerprint", "d_model", "hook_site", "layers"):
        assert key in meta
    assert torch.allclose(back.direction(1).norm(), torch.tensor(1.0))


def test_wrong_model_refused(tiny_model, other_tiny_model, tmp_path):
    path = save_vector(make_vector(tiny_model), tmp_path / "v")
    with pytest.raises(ArtefactError, match="not for this model"):
        load_vector(path, model=other_tiny_model)


def test_wrong_width_refused(tiny_model, tmp_path):
    vec = make_vector(tiny_model)
    path = save_vector(vec, tmp_path / "v")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["d_model"] = 999
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtefactError, match=r"damaged|d_model"):
        load_vector(path, model=tiny_model)


@pytest.mark.parametrize("damage", ["truncate", "pickle", "json", "version", "missing_json", "nan"])
def test_damaged_files_give_clear_errors(tiny_model, tmp_path, damage):
    vec = make_vector(tiny_model)
    path = save_vector(vec, tmp_path / "v")
    meta_path = path.with_suffix(".json")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "pickle":
        path.write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    elif damage == "json":
        meta_path.write_text("{broken")
    elif damage == "version":
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format_version": 99}))
    elif damage == "missing_json":
        meta_path.unlink()
    elif damage == "nan":
        bad = ValueVector(vec.value, vec.weight * float("nan"), vec.bias, vec.mean_diff, vec.train_acc,
                          vec.test_acc, vec.layers, vec.meta)
        save_vector(bad, path)
    named = meta_path.name if damage in ("json", "version", "missing_json") else path.name
    with pytest.raises(ArtefactError, match=named):
        load_vector(path)


def test_with_layers_validates(tiny_model):
    vec = make_vector(tiny_model)
    assert vec.with_layers([3, 1, 1]).layers == (1, 3)
    with pytest.raises(ValueError):
        vec.with_layers([99])


def test_save_is_all_or_nothing_when_the_tensor_path_is_a_folder(tiny_model, tmp_path):
    path = save_vector(make_vector(tiny_model), tmp_path / "power.safetensors")
    before = path.with_suffix(".json").read_bytes()
    path.unlink()
    path.mkdir()  # a folder where the tensor file goes
    other = make_vector(tiny_model, layers=(0, 3))
    with pytest.raises(ValueError, match="is a folder"):
        save_vector(other, path)
    assert path.with_suffix(".json").read_bytes() == before  # the sidecar was not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["power.json", "power.safetensors"]  # no temporary left


def test_save_refuses_a_folder_in_place_of_the_sidecar_or_a_file_as_parent(tiny_model, tmp_path):
    (tmp_path / "v.json").mkdir()
    with pytest.raises(ValueError, match="is a folder"):
        save_vector(make_vector(tiny_model), tmp_path / "v.safetensors")
    assert not (tmp_path / "v.safetensors").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        save_vector(make_vector(tiny_model), tmp_path / "file" / "v.safetensors")


def test_format_version_as_a_string_says_so(tiny_model, tmp_path):
    path = save_vector(make_vector(tiny_model), tmp_path / "v")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["format_version"] = "1"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ArtefactError, match=r"format_version is str '1', but it must be the JSON integer 1"):
        load_vector(path)


def test_a_folder_or_fifo_in_place_of_a_file_is_named_as_such(tiny_model, tmp_path):
    import os

    path = save_vector(make_vector(tiny_model), tmp_path / "v")
    path.unlink()
    path.mkdir()
    with pytest.raises(ArtefactError, match="is a folder, not a file"):
        load_vector(path)
    path.rmdir()
    from conftest import fifo_at

    with fifo_at(path), pytest.raises(ArtefactError, match=r"is a FIFO \(named pipe\), not a regular file"):
        load_vector(path)  # reading it would block until a writer comes
    path.unlink()
    os.symlink(path.name, path)  # a link to itself
    with pytest.raises(ArtefactError, match="symbolic link loop"):
        load_vector(path)
    sidecar = path.with_suffix(".json")
    sidecar.rename(tmp_path / "meta.json")
    sidecar.mkdir()
    with pytest.raises(ArtefactError, match="is a folder, not a file"):
        load_vector(path)


def test_save_refuses_a_suffix_that_is_not_safetensors(tiny_model, tmp_path):
    from workbench.gate import Gate, save_gate

    vec = make_vector(tiny_model)
    for name in ("x.pt", "x.pkl", "x.bin"):
        with pytest.raises(ValueError, match=r"written as a \.safetensors file plus a \.json sidecar.*Pass .*x\.safetensors"):
            save_vector(vec, tmp_path / name)
        assert not list(tmp_path.iterdir())
    gate = Gate("honesty", "residual", torch.zeros(tiny_model.cfg.d_model), 0.0, 0.6, 1)
    with pytest.raises(ValueError, match=r"gates are written as a \.safetensors file"):
        save_gate(gate, tmp_path / "g.pt")
    assert save_vector(vec, tmp_path / "v.safetensors") == tmp_path / "v.safetensors"
    assert save_vector(vec, tmp_path / "w") == tmp_path / "w.safetensors"


def test_similarity_is_the_per_layer_cosine(tiny_model):
    vec = make_vector(tiny_model)
    same = vec.similarity(vec)
    assert sorted(same) == list(range(vec.n_layers)) and all(v == pytest.approx(1.0) for v in same.values())
    flipped = ValueVector(vec.value, -vec.weight, vec.bias, vec.mean_diff, vec.train_acc, vec.test_acc, vec.layers)
    assert all(v == pytest.approx(-1.0) for v in vec.similarity(flipped).values())
    with pytest.raises(TypeError, match="another ValueVector"):
        vec.similarity(vec.weight)


def test_to_frame_gives_the_accuracy_curve(tiny_model, monkeypatch):
    import sys

    vec = make_vector(tiny_model, layers=(1, 2))
    frame = vec.to_frame()
    assert list(frame.columns) == ["value", "layer", "train_acc", "test_acc", "steering", "weight_norm"]
    assert frame["layer"].tolist() == list(range(vec.n_layers)) and frame["steering"].tolist()[1:3] == [True, True]
    assert frame["test_acc"].tolist() == pytest.approx(vec.test_acc.tolist())
    monkeypatch.setitem(sys.modules, "pandas", None)  # pandas is optional: a clear error without it
    with pytest.raises(ImportError, match=r"needs pandas.*pip install pandas"):
        vec.to_frame()
