import dataclasses

import gguf
import numpy as np
import pytest
import torch
from helpers import synthetic_vector

from workbench.export import ARCHITECTURE, control_directions, export_gguf, import_gguf
from workbench.model import fingerprint
from workbench.vectors import ArtefactError


@pytest.fixture
def vec(tiny_model):
    v = synthetic_vector(tiny_model, layers=(1, 3))
    return dataclasses.replace(v, meta={"model_name": "tiny", "model_fingerprint": fingerprint(tiny_model),
                                        "hook_site": "hook_resid_post"})


def write_raw(path, tensors, arch=ARCHITECTURE, layer_count=None):
    """A GGUF file written the way repeng does, with arbitrary tensors."""
    w = gguf.GGUFWriter(path, arch)
    w.add_string(f"{arch}.model_hint", "llama")
    w.add_uint32(f"{arch}.layer_count", len(tensors) if layer_count is None else layer_count)
    for name, data in tensors.items():
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_round_trip_gives_directions_times_strength(vec, tiny_model, tmp_path):
    path = export_gguf(vec, tmp_path / "power.gguf", strength=2.5)
    cv = import_gguf(path, model=tiny_model)
    assert cv.layers == (1, 3) and cv.d_model == tiny_model.cfg.d_model and cv.model_hint == "tiny"
    for layer in (1, 3):
        torch.testing.assert_close(cv.directions[layer], 2.5 * vec.direction(layer), rtol=1e-6, atol=1e-7)
        assert cv.directions[layer].dtype == torch.float32
        assert torch.equal(cv.directions[layer], control_directions(vec, 2.5)[layer])
    assert cv.meta["workbench.value"] == "power" and cv.meta["workbench.strengths"] == [2.5, 2.5]
    per_layer = import_gguf(export_gguf(vec, tmp_path / "p2.gguf", {1: 1.0, 3: -4.0}, model_hint="llama"))
    assert per_layer.model_hint == "llama"
    torch.testing.assert_close(per_layer.directions[3], -4.0 * vec.direction(3), rtol=1e-6, atol=1e-7)
    only = import_gguf(export_gguf(vec, tmp_path / "p3.gguf", 1.0, layers=[2]))
    assert only.layers == (2,)
    assert not list(tmp_path.glob(".*.tmp"))


def test_file_has_the_llama_cpp_layout(vec, tmp_path):
    path = export_gguf(vec, tmp_path / "power.gguf", strength=3.0, model_hint="llama")
    reader = gguf.GGUFReader(path)
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    layer_count = reader.get_field("controlvector.layer_count")
    assert layer_count.contents() == 2 and layer_count.types == [gguf.GGUFValueType.UINT32]
    assert [t.name for t in reader.tensors] == ["direction.1", "direction.3"]
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32 and t.data.dtype == np.float32
        assert list(t.shape) == [vec.d_model] and t.data.shape == (vec.d_model,)
        assert np.linalg.norm(t.data) == pytest.approx(3.0, rel=1e-6)


def test_a_repeng_style_file_imports(tmp_path):
    data = {f"direction.{i}": np.full(6, float(i), dtype=np.float32) for i in (2, 5)}
    cv = import_gguf(write_raw(tmp_path / "r.gguf", data))
    assert cv.layers == (2, 5) and cv.model_hint == "llama" and cv.meta == {}
    assert torch.equal(cv.directions[5], torch.full((6,), 5.0))


def test_export_refuses_bad_arguments(vec, tmp_path):
    cases = [
        (dict(strength=1.0, layers=[0, 1]), "Layer 0 cannot be exported"),
        (dict(strength=1.0, layers=[9]), "invalid"),
        (dict(strength=float("nan")), "finite number"),
        (dict(strength=True), "finite number"),
        (dict(strength={1: 1.0}), "no value for layers \\[3\\]"),
        (dict(strength=1.0, model_hint=""), "model_hint"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            export_gguf(vec, tmp_path / "x.gguf", **kwargs)
    with pytest.raises(ValueError, match="is a folder"):
        export_gguf(vec, tmp_path, 1.0)
    assert not list(tmp_path.iterdir())


def test_failed_export_leaves_the_old_file(vec, tmp_path, monkeypatch):
    path = export_gguf(vec, tmp_path / "power.gguf", strength=1.0)
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(OSError, match="disk full"):
        export_gguf(vec, path, strength=5.0)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def test_damaged_and_foreign_files_are_clear_errors(vec, tmp_path):
    good = export_gguf(vec, tmp_path / "good.gguf", strength=1.0).read_bytes()
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all" * 4)
    (tmp_path / "cut.gguf").write_bytes(good[: len(good) - 16])
    (tmp_path / "head.gguf").write_bytes(good[:40])
    row = np.ones(4, dtype=np.float32)
    files = {
        "junk.gguf": "not a readable GGUF file",
        "cut.gguf": "not a readable GGUF file|cut short",
        "head.gguf": "not a readable GGUF file",
        "model.gguf": (write_raw(tmp_path / "model.gguf", {"blk.0.attn_q.weight": row}, arch="llama"),
                       "architecture 'llama', not a control vector"),
        "name.gguf": (write_raw(tmp_path / "name.gguf", {"weights.1": row}), "not named direction.N"),
        "zero.gguf": (write_raw(tmp_path / "zero.gguf", {"direction.0": row}), "direction.0 is invalid"),
        "half.gguf": (write_raw(tmp_path / "half.gguf", {"direction.1": row.astype(np.float16)}), "F16.*float32"),
        "count.gguf": (write_raw(tmp_path / "count.gguf", {"direction.1": row}, layer_count=3), "layer_count is 3"),
        "width.gguf": (write_raw(tmp_path / "width.gguf", {"direction.1": row, "direction.2": np.ones(5, np.float32)}),
                       "different widths"),
        "nan.gguf": (write_raw(tmp_path / "nan.gguf", {"direction.1": np.full(4, np.nan, np.float32)}), "NaN"),
        "empty.gguf": (write_raw(tmp_path / "empty.gguf", {}), "no direction tensors"),
    }
    for name, expected in files.items():
        message = expected[1] if isinstance(expected, tuple) else expected
        with pytest.raises(ArtefactError, match=message):
            import_gguf(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ArtefactError, match="is a folder"):
        import_gguf(tmp_path)


def test_import_refuses_another_model(vec, tiny_model, other_tiny_model, tmp_path):
    path = export_gguf(vec, tmp_path / "power.gguf", strength=1.0)
    with pytest.raises(ArtefactError, match="not from this model"):
        import_gguf(path, model=other_tiny_model)
    narrow = write_raw(tmp_path / "narrow.gguf", {"direction.1": np.ones(5, np.float32)})
    with pytest.raises(ArtefactError, match="width 5"):
        import_gguf(narrow, model=tiny_model)
    deep = write_raw(tmp_path / "deep.gguf", {"direction.9": np.ones(tiny_model.cfg.d_model, np.float32)})
    with pytest.raises(ArtefactError, match="steers layers \\[9\\]"):
        import_gguf(deep, model=tiny_model)


def test_export_refuses_huge_strengths_and_unwritable_places(vec, tmp_path, monkeypatch):
    import os

    for strength in (1e39, -1e7, {1: 1.0, 3: 1e39}):
        with pytest.raises(ValueError, match=r"must be at most 1e\+06"):
            export_gguf(vec, tmp_path / "x.gguf", strength)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        export_gguf(vec, tmp_path / "file" / "sub" / "x.gguf", 1.0)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as an unprivileged user in a read-only folder
    with pytest.raises(ValueError, match="is not writable"):
        export_gguf(vec, tmp_path / "ro" / "x.gguf", 1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_cli_export_gguf_errors_are_clear(vec, tmp_path, capsys):
    from workbench.cli import main
    from workbench.vectors import save_vector

    saved = save_vector(vec, tmp_path / "power.safetensors")
    (tmp_path / "file").write_text("x")
    base = ["export-gguf", "--vector", str(saved)]
    cases = [(["--strength", "1e39", "--out", str(tmp_path / "a.gguf")], "must be at most"),
             (["--strength", "4", "--out", str(tmp_path / "file" / "a.gguf")], "is a file, not a folder"),
             (["--strength", "4", "--out", str(tmp_path / "a.gguf"), "--layers", ""], "--layers is empty"),
             (["--strength", "4", "--out", str(tmp_path / "a.gguf"), "--layers", "one"], "'one' is not a layer number")]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert any(line.startswith("error: ") and message in line for line in err.splitlines())
    assert not (tmp_path / "a.gguf").exists()
