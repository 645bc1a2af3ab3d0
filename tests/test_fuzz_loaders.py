"""Damaged and fuzzed input files: every loader returns valid data or raises a clear error.

A clear error is a :class:`DataError` / :class:`ArtefactError` (``ValueError`` subclasses) or a
``FileNotFoundError`` whose message names the file and the problem; never a raw ``KeyError``,
``UnicodeDecodeError``, ``JSONDecodeError``, ``TypeError`` or ``csv.Error``. Nothing in a file is
ever executed: a pickle whose ``__reduce__`` would create a marker file never creates it.
"""

from __future__ import annotations

import itertools
import json
import pickle
import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from tiny import make_tiny_model_folder

from workbench.datasets import ContrastPair, DataError, read_pairs
from workbench.gate import Gate, load_gate, save_gate
from workbench.model import fingerprint, load_model, model_info
from workbench.prompts import read_prompts, read_split_prompts
from workbench.vectors import ArtefactError, ValueVector, load_vector, save_vector

CLEAR = (DataError, ArtefactError, FileNotFoundError)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_clear(err: BaseException, path: Path) -> None:
    assert type(err) in CLEAR, f"unclear error {type(err).__name__}: {err}"
    assert path.name in str(err), f"the message does not name {path.name}: {err}"
    assert len(str(err)) < 2000, "the message dumps the file instead of describing the problem"


class Marker:
    """Unpickling this object creates ``path`` (what a malicious pickle would do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def malicious_pickles(marker: Path) -> list[bytes]:
    return [pickle.dumps({"weight": Marker(marker)}, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]


def test_the_marker_pickle_is_live(tmp_path):
    """Guard for the tests below: unpickling the payload really does create the marker."""
    marker = tmp_path / "marker"
    pickle.loads(malicious_pickles(marker)[-1])
    assert marker.exists()


# ---------------------------------------------------------------- text files: pairs and prompts

PAIR_LINES = [
    {"value": "power", "positive": "She took charge of the meeting.", "negative": "She shared charge of the meeting."},
    {"value": "power", "positive": "He wanted the corner office.", "negative": "He wanted the team to thrive."},
]
PROMPT_TEXTS = ["Should I take the promotion?", "What is 7 x 8?"]


def _valid_pairs(result: object) -> None:
    assert isinstance(result, list) and result and all(isinstance(p, ContrastPair) for p in result)
    assert all(p.positive.strip() and p.negative.strip() and p.positive != p.negative for p in result)


def _valid_prompts(result: object) -> None:
    assert isinstance(result, list) and result and all(isinstance(t, str) and t.strip() == t and t for t in result)


def _valid_split(result: object) -> None:
    assert isinstance(result, tuple) and len(result) == 2
    _valid_prompts(result[0] + result[1])


# name -> (suffix, loader, validator, valid file content, is it a JSON-lines format)
TEXT_LOADERS: dict[str, tuple[str, Callable, Callable, bytes, bool]] = {
    "pairs": (".jsonl", lambda p: read_pairs(p, value="power"), _valid_pairs,
              "".join(json.dumps(x) + "\n" for x in PAIR_LINES).encode(), True),
    "pairs-any-value": (".jsonl", read_pairs, _valid_pairs,
                        "".join(json.dumps(x) + "\n" for x in PAIR_LINES).encode(), True),
    "prompts-jsonl": (".jsonl", read_prompts, _valid_prompts,
                      "".join(json.dumps({"text": t}) + "\n" for t in PROMPT_TEXTS).encode(), True),
    "prompts-csv": (".csv", read_prompts, _valid_prompts,
                    ("id,text\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(PROMPT_TEXTS))).encode(), False),
    "prompts-txt": (".txt", read_prompts, _valid_prompts, "\n".join(PROMPT_TEXTS).encode() + b"\n", False),
    "shipped-split": (".jsonl", read_split_prompts, _valid_split,
                      (json.dumps({"text": PROMPT_TEXTS[0], "split": "train"}) + "\n"
                       + json.dumps({"text": PROMPT_TEXTS[1], "split": "test"}) + "\n").encode(), True),
}


def load_text(name: str, path: Path) -> object | None:
    """Run loader ``name`` on ``path``: return its (validated) result, or None after a clear error."""
    _, loader, validate, _, _ = TEXT_LOADERS[name]
    try:
        result = loader(path)
    except Exception as err:  # every exception is classified
        assert_clear(err, path)
        return None
    validate(result)
    return result


def write(tmp_path: Path, name: str, content: bytes, stem: str = "input") -> Path:
    path = tmp_path / f"{stem}{TEXT_LOADERS[name][0]}"
    path.write_bytes(content)
    return path


def _line(obj: object) -> bytes:
    return (json.dumps(obj) + "\n").encode()


# case -> (content, loaders that may accept it); every other loader must refuse it clearly.
TEXT_CASES: dict[str, tuple[bytes, set[str]]] = {
    "empty file": (b"", set()),
    "blank lines only": (b"\n \n\t\n\r\n", set()),
    "binary garbage": (bytes(range(256)) * 8, set()),
    "random bytes": (random.Random(0).randbytes(4096), set()),
    "latin-1 text": ("caf\xe9 au lait, s'il vous pla\xeet\n".encode("latin-1"), set()),
    "utf-16 text": ("Should I take the promotion?\n".encode("utf-16"), set()),
    "NUL inside text": (b"Should I \x00 take it?\n", set()),
    "line of 1.5 million characters": (b"x" * 1_500_000 + b"\n", set()),
    "JSON array line": (_line([{"text": "a", "value": "power"}]), {"prompts-txt"}),
    "JSON string line": (_line("just a string"), {"prompts-txt"}),
    "JSON number line": (b"42\n", {"prompts-txt"}),
    "JSON null line": (b"null\n", {"prompts-txt"}),
    "JSON object of the wrong shape": (_line({"text": 5, "value": ["power"], "positive": 1}), {"prompts-txt"}),
    "NaN token": (b'{"value": NaN, "positive": NaN, "negative": "b", "text": NaN}\n', {"prompts-txt"}),
    "50000 nested brackets": (b"[" * 50_000 + b"\n", {"prompts-txt"}),
    "5000-digit integer": (b'{"text": ' + b"1" * 5000 + b', "value": ' + b"1" * 5000 + b"}\n", {"prompts-txt"}),
    "lone surrogate escape": (_line({"value": "power", "positive": "a\ud800b", "negative": "c d", "text": "a\ud800b"}),
                              {"prompts-txt"}),
    "unknown value name": (_line({"value": "powr", "positive": "a b", "negative": "c d", "text": "x"}),
                           {"prompts-txt", "prompts-jsonl", "shipped-split"}),
    "2000-character value name": (_line({"value": "p" * 2000, "positive": "a b", "negative": "c d"}),
                                  {"prompts-txt"}),
    "wrong split name": (_line({"text": "a", "split": "validation"}), {"prompts-txt", "prompts-jsonl"}),
    "unhashable split": (_line({"text": "a", "split": ["train"]}), {"prompts-txt", "prompts-jsonl"}),
    "CSV field over the csv module's limit": (b'text\n"' + b"a" * 200_000 + b'"\n', {"prompts-txt"}),
    "CSV without a text column": (b"prompt,id\nhello,1\n", {"prompts-txt"}),
}


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_damaged_text_files(tmp_path, name, case):
    content, may_accept = TEXT_CASES[case]
    path = write(tmp_path, name, content)
    result = load_text(name, path)
    if name not in may_accept:
        assert result is None, f"{name} accepted {case!r}: {result!r}"


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
def test_truncated_text_files(tmp_path, name):
    """Cutting a valid file anywhere gives a clear error or the lines that survived, never a crash."""
    _, _, _, valid, is_jsonl = TEXT_LOADERS[name]
    for cut in range(0, len(valid), 7):
        path = write(tmp_path, name, valid[:cut])
        result = load_text(name, path)
        last_line_cut = cut > 0 and valid[cut - 1 : cut] != b"\n"
        if is_jsonl and last_line_cut and valid[:cut].strip():
            assert result is None, f"{name} accepted a file cut at byte {cut}"


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
def test_bom_and_crlf_are_read_like_plain_files(tmp_path, name):
    _, _, _, valid, _ = TEXT_LOADERS[name]
    plain = load_text(name, write(tmp_path, name, valid, "plain"))
    windows = load_text(name, write(tmp_path, name, b"\xef\xbb\xbf" + valid.replace(b"\n", b"\r\n"), "windows"))
    assert plain is not None and windows == plain


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
def test_missing_file_and_folder(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        TEXT_LOADERS[name][1](tmp_path / "nothing.jsonl")
    assert_clear(info.value, tmp_path / "nothing.jsonl")
    folder = tmp_path / f"folder{TEXT_LOADERS[name][0]}"
    folder.mkdir()
    with pytest.raises(DataError, match="is a folder") as info:
        TEXT_LOADERS[name][1](folder)
    assert_clear(info.value, folder)


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
def test_fifo_and_link_loop_are_named_not_reported_missing(tmp_path, name):
    import os

    from conftest import fifo_at

    fifo = tmp_path / f"pipe{TEXT_LOADERS[name][0]}"
    with fifo_at(fifo), pytest.raises(DataError, match=r"is a FIFO \(named pipe\), not a regular file") as info:
        TEXT_LOADERS[name][1](fifo)  # reading it would block until a writer comes
    assert_clear(info.value, fifo)
    loop = tmp_path / f"loop{TEXT_LOADERS[name][0]}"
    os.symlink(loop.name, loop)
    with pytest.raises(DataError, match="symbolic link loop") as info:
        TEXT_LOADERS[name][1](loop)
    assert_clear(info.value, loop)
    dangling = tmp_path / f"dangling{TEXT_LOADERS[name][0]}"
    os.symlink("nowhere.txt", dangling)
    with pytest.raises(FileNotFoundError, match="broken symbolic link") as info:
        TEXT_LOADERS[name][1](dangling)
    assert_clear(info.value, dangling)


def test_csv_prompts_with_an_unterminated_quote_name_the_line(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_text('text\nShould I take the promotion?\n"What is 7 x 8?\nHow do I boil an egg?\nWhy is the sky blue?\n')
    with pytest.raises(DataError, match=r"prompts\.csv:3: unterminated quoted field") as info:
        read_prompts(path)
    assert_clear(info.value, path)
    path.write_text('text\n"a prompt\nover two lines"\n"She said ""no"""\n')  # quoted newlines and quotes still read
    assert read_prompts(path) == ["a prompt\nover two lines", 'She said "no"']


@pytest.mark.parametrize("name", sorted(TEXT_LOADERS))
def test_pickles_in_text_files_are_never_executed(tmp_path, name):
    marker = tmp_path / "marker"
    for i, payload in enumerate(malicious_pickles(marker)):
        load_text(name, write(tmp_path, name, payload, f"pickle{i}"))
    assert not marker.exists()


def test_error_messages_name_the_line(tmp_path):
    content = TEXT_LOADERS["pairs"][3] + "caf\xe9\n".encode("latin-1")
    with pytest.raises(DataError, match=r"input\.jsonl:3: not valid UTF-8 \(byte b'\\xe9' at offset \d+\)"):
        read_pairs(write(tmp_path, "pairs", content))
    with pytest.raises(DataError, match=r":2: malformed JSON \(Expecting value at column 1\)"):
        read_prompts(write(tmp_path, "prompts-jsonl", b'{"text": "a"}\n]\n'))
    with pytest.raises(DataError, match=r":1: line is 1,500,000 characters long \(the limit is 1,000,000\)"):
        read_prompts(write(tmp_path, "prompts-txt", b"x" * 1_500_000))


def test_json_prompt_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps([{"text": "a"}]))
    with pytest.raises(DataError, match=r"\.json prompt files are not read\. Use JSONL"):
        read_prompts(path)


@FUZZ
@given(st.sampled_from(sorted(TEXT_LOADERS)), st.binary(max_size=3000))
def test_fuzz_random_bytes(tmp_path, name, content):
    load_text(name, write(tmp_path, name, content))


@FUZZ
@given(st.sampled_from(sorted(TEXT_LOADERS)), st.data())
def test_fuzz_mutated_valid_files(tmp_path, name, data):
    content = bytearray(TEXT_LOADERS[name][3])
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(content)))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.integers(0, 255))
        if op == "insert" or pos == len(content):
            content.insert(pos, byte)
        elif op == "replace":
            content[pos] = byte
        else:
            del content[pos]
    load_text(name, write(tmp_path, name, bytes(content)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
    | st.sampled_from(["power", "train", "test", "text", "value", "positive", "negative"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["text", "split", "value", "positive", "negative", "x"]), children, max_size=5),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(sorted(TEXT_LOADERS)), st.lists(json_values, min_size=1, max_size=4), st.booleans())
def test_fuzz_random_json_lines(tmp_path, name, values, ascii_only):
    content = "".join(json.dumps(v, ensure_ascii=ascii_only) + "\n" for v in values).encode("utf-8", "surrogatepass")
    load_text(name, write(tmp_path, name, content))


# ---------------------------------------------------------------- artefacts: value vectors and gates


def make_vector(model) -> ValueVector:
    n, d = model.cfg.n_layers, model.cfg.d_model
    g = torch.Generator().manual_seed(0)
    meta = {**model_info(model), "model_fingerprint": fingerprint(model), "hook_site": "hook_resid_post"}
    return ValueVector("power", torch.randn(n, d, generator=g), torch.randn(n, generator=g),
                       torch.randn(n, d, generator=g), torch.rand(n, generator=g), torch.rand(n, generator=g),
                       (1, 2), meta)


def make_gate(model) -> Gate:
    g = torch.Generator().manual_seed(1)
    meta = {**model_info(model), "model_fingerprint": fingerprint(model)}
    return Gate("power", "residual", torch.randn(model.cfg.d_model, generator=g), 0.25, 0.7, 1, meta)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    """A tiny model with another d_model (32 instead of 64)."""
    return load_model(make_tiny_model_folder(tmp_path_factory.mktemp("wide") / "model", d_model=32), device="cpu")


@pytest.fixture
def saved_vector(tiny_model, tmp_path) -> Path:
    return save_vector(make_vector(tiny_model), tmp_path / "power")


@pytest.fixture
def saved_gate(tiny_model, tmp_path) -> Path:
    return save_gate(make_gate(tiny_model), tmp_path / "power_gate")


def edit_meta(path: Path, **changes: object) -> None:
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    for key, value in changes.items():
        if value is DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    meta_path.write_text(json.dumps(meta))


DELETE = object()


def rewrite_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the tensor file by a well-formed one and drop the checksum (as an older file would have)."""
    save_file(tensors, str(path))
    edit_meta(path, tensors_sha256=DELETE)


def _tensor_cases(kind: str) -> dict[str, Callable[[Path], None]]:
    """Damages of the .safetensors file of an artefact."""
    cases: dict[str, Callable[[Path], None]] = {
        "empty tensor file": lambda p: p.write_bytes(b""),
        "random bytes": lambda p: p.write_bytes(random.Random(1).randbytes(2048)),
        "JSON instead of tensors": lambda p: p.write_text('{"weight": [1, 2, 3]}'),
        "header length beyond the file": lambda p: p.write_bytes((10**12).to_bytes(8, "little") + b"{}"),
        "header that is not JSON": lambda p: p.write_bytes((8).to_bytes(8, "little") + b"\xff\xfe{[}]\x00\x00"),
        "one flipped byte in the data": lambda p: p.write_bytes(p.read_bytes()[:-3] + b"\x7f" + p.read_bytes()[-2:]),
        "one appended byte": lambda p: p.write_bytes(p.read_bytes() + b"\x00"),
        "tensor file of another save": None,  # filled in by the tests (needs a second artefact)
    }
    for cut in (1, 8, 50, 0.5, -1):
        cases[f"truncated at {cut}"] = lambda p, c=cut: p.write_bytes(
            p.read_bytes()[: int(len(p.read_bytes()) * c) if isinstance(c, float) else c])
    return {k: v for k, v in cases.items() if v is not None}


def _meta_cases(kind: str) -> dict[str, Callable[[Path], None]]:
    """Damages of the .json sidecar of an artefact (``kind`` is 'value_vector' or 'gate')."""
    other = "gate" if kind == "value_vector" else "value_vector"
    j = lambda p: p.with_suffix(".json")  # noqa: E731
    return {
        "sidecar missing": lambda p: j(p).unlink(),
        "sidecar empty": lambda p: j(p).write_bytes(b""),
        "sidecar truncated": lambda p: j(p).write_bytes(j(p).read_bytes()[: len(j(p).read_bytes()) // 2]),
        "sidecar not JSON": lambda p: j(p).write_text("{broken"),
        "sidecar is a JSON list": lambda p: j(p).write_text("[1, 2]"),
        "sidecar is null": lambda p: j(p).write_text("null"),
        "sidecar not UTF-8": lambda p: j(p).write_bytes(j(p).read_bytes().replace(b'"power"', b'"p\xf6wer"')),
        "sidecar is binary": lambda p: j(p).write_bytes(bytes(range(256))),
        "sidecar nested 50000 deep": lambda p: j(p).write_bytes(b"[" * 50_000),
        "sidecar with a 5000-digit number": lambda p: j(p).write_bytes(b'{"kind": ' + b"9" * 5000 + b"}"),
        "sidecar of 12 MB": lambda p: j(p).write_bytes(b'{"pad": "' + b"x" * 12_000_000 + b'"}'),
        "sidecar of the other artefact kind": lambda p: edit_meta(p, kind=other),
        "kind missing": lambda p: edit_meta(p, kind=DELETE),
        "format version 99": lambda p: edit_meta(p, format_version=99),
        "format version as string": lambda p: edit_meta(p, format_version="1"),
        "format version true": lambda p: edit_meta(p, format_version=True),
        "format version 1.0": lambda p: edit_meta(p, format_version=1.0),
        "format version missing": lambda p: edit_meta(p, format_version=DELETE),
        "value missing": lambda p: edit_meta(p, value=DELETE),
        "value a number": lambda p: edit_meta(p, value=5),
    }


VECTOR_META_CASES = {
    "n_layers as string": {"n_layers": "4"},
    "n_layers null": {"n_layers": None},
    "n_layers zero": {"n_layers": 0},
    "n_layers a list": {"n_layers": [4]},
    "n_layers true": {"n_layers": True},
    "n_layers wrong": {"n_layers": 5},
    "d_model wrong": {"d_model": 999},
    "d_model float": {"d_model": 64.0},
    "d_model missing": {"d_model": DELETE},
    "layers missing": {"layers": DELETE},
    "layers empty": {"layers": []},
    "layers out of range": {"layers": [1, 99]},
    "layers negative": {"layers": [-1]},
    "layers as string": {"layers": "1,2"},
    "layers as a number": {"layers": 2},
    "layers with a float": {"layers": [1.5]},
    "layers with a bool": {"layers": [True]},
    "value empty": {"value": " "},
    "other hook site": {"hook_site": "hook_resid_pre"},
}


def _vector_tensor_content_cases(model) -> dict[str, dict[str, torch.Tensor]]:
    v = make_vector(model)
    good = {name: getattr(v, name).float().contiguous() for name in ("weight", "bias", "mean_diff", "train_acc", "test_acc")}
    nan_weight = good["weight"].clone()
    nan_weight[1, 0] = float("nan")
    zero_weight = good["weight"].clone()
    zero_weight[2] = 0.0
    return {
        "weight float16": {**good, "weight": good["weight"].half()},
        "weight bfloat16": {**good, "weight": good["weight"].bfloat16()},
        "weight int64": {**good, "weight": good["weight"].long()},
        "weight transposed": {**good, "weight": good["weight"].T.contiguous()},
        "bias of one layer too many": {**good, "bias": torch.zeros(model.cfg.n_layers + 1)},
        "weight missing": {k: t for k, t in good.items() if k != "weight"},
        "weight with NaN": {**good, "weight": nan_weight},
        "all-zero weight at a steering layer": {**good, "weight": zero_weight},
        "test_acc with inf": {**good, "test_acc": torch.full_like(good["test_acc"], float("inf"))},
    }


def load_clear(loader: Callable, path: Path, **kwargs) -> BaseException:
    """Run an artefact loader that must fail; the error names the tensor file or its .json sidecar."""
    with pytest.raises(Exception) as info:  # classified just below
        loader(path, **kwargs)
    named = path if path.name in str(info.value) else path.with_suffix(".json")
    assert_clear(info.value, named)
    return info.value


@pytest.mark.parametrize("case", sorted(_tensor_cases("value_vector")))
def test_damaged_vector_tensor_file(saved_vector, case):
    _tensor_cases("value_vector")[case](saved_vector)
    load_clear(load_vector, saved_vector)


@pytest.mark.parametrize("case", sorted(_meta_cases("value_vector")))
def test_damaged_vector_sidecar(saved_vector, case):
    _meta_cases("value_vector")[case](saved_vector)
    err = load_clear(load_vector, saved_vector)
    assert saved_vector.with_suffix(".json").name in str(err)


@pytest.mark.parametrize("case", sorted(VECTOR_META_CASES))
def test_wrong_vector_metadata(saved_vector, case):
    edit_meta(saved_vector, **VECTOR_META_CASES[case])
    load_clear(load_vector, saved_vector)


@pytest.mark.parametrize("case", ["weight float16", "weight bfloat16", "weight int64", "weight transposed",
                                  "bias of one layer too many", "weight missing", "weight with NaN",
                                  "all-zero weight at a steering layer", "test_acc with inf"])
def test_wrong_vector_dtype_shape_or_values(tiny_model, saved_vector, case):
    rewrite_tensors(saved_vector, _vector_tensor_content_cases(tiny_model)[case])
    err = load_clear(load_vector, saved_vector)
    assert saved_vector.name in str(err)


def test_vector_tensor_file_from_another_save_is_refused(tiny_model, saved_vector, tmp_path):
    other = make_vector(tiny_model)
    other = ValueVector(other.value, other.weight * 2, other.bias, other.mean_diff, other.train_acc, other.test_acc,
                        other.layers, other.meta)
    second = save_vector(other, tmp_path / "second")
    saved_vector.write_bytes(second.read_bytes())  # e.g. a save interrupted between the two files
    with pytest.raises(ArtefactError, match="checksum differs"):
        load_vector(saved_vector)


def test_vector_for_another_model_is_refused(saved_vector, other_tiny_model, wide_model, tiny_model):
    with pytest.raises(ArtefactError, match="not for this model"):
        load_vector(saved_vector, model=other_tiny_model)
    with pytest.raises(ArtefactError, match=r"d_model=64, but this model has d_model=32"):
        load_vector(saved_vector, model=wide_model)
    edit_meta(saved_vector, model_fingerprint=DELETE)
    with pytest.raises(ArtefactError, match="records no model fingerprint"):
        load_vector(saved_vector, model=tiny_model)
    assert load_vector(saved_vector).layers == (1, 2)  # without a model it still loads


def test_vector_tensor_file_missing(saved_vector):
    saved_vector.unlink()
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        load_vector(saved_vector)
    assert_clear(info.value, saved_vector)


def test_pickle_renamed_to_safetensors_is_never_executed(saved_vector, saved_gate, tmp_path):
    marker = tmp_path / "marker"
    for payload in malicious_pickles(marker):
        for path, loader in ((saved_vector, load_vector), (saved_gate, load_gate)):
            path.write_bytes(payload)
            with pytest.raises(ArtefactError, match="not a readable safetensors file"):
                loader(path)
    assert not marker.exists()
    assert "pickle" not in sys.modules["workbench.vectors"].__dict__


@pytest.mark.parametrize("case", sorted(_tensor_cases("gate")))
def test_damaged_gate_tensor_file(saved_gate, case):
    _tensor_cases("gate")[case](saved_gate)
    load_clear(load_gate, saved_gate)


@pytest.mark.parametrize("case", sorted(_meta_cases("gate")))
def test_damaged_gate_sidecar(saved_gate, case):
    _meta_cases("gate")[case](saved_gate)
    load_clear(load_gate, saved_gate)


GATE_META_CASES = {
    "unknown gate kind": {"gate_kind": "magic"},
    "gate kind missing": {"gate_kind": DELETE},
    "unknown value": {"value": "powr"},
    "bias missing": {"bias": DELETE},
    "bias a string": {"bias": "0.1"},
    "bias NaN": {"bias": float("nan")},
    "bias infinite": {"bias": float("inf")},
    "g0 above 1": {"g0": 1.5},
    "g0 missing": {"g0": DELETE},
    "g0 a string": {"g0": "0.7"},
    "dim wrong": {"dim": 65},
    "dim a string": {"dim": "64"},
    "layer missing for a residual gate": {"layer": DELETE},
    "layer negative": {"layer": -2},
    "layer a float": {"layer": 1.0},
}


@pytest.mark.parametrize("case", sorted(GATE_META_CASES))
def test_wrong_gate_metadata(saved_gate, case):
    edit_meta(saved_gate, **GATE_META_CASES[case])
    load_clear(load_gate, saved_gate)


@pytest.mark.parametrize("case", ["float16", "shape", "missing", "nan"])
def test_wrong_gate_dtype_shape_or_values(tiny_model, saved_gate, case):
    w = make_gate(tiny_model).weight
    tensors = {"float16": {"weight": w.half()}, "shape": {"weight": torch.zeros(2, 32)},
               "missing": {"bias": torch.zeros(1)}, "nan": {"weight": w * float("nan")}}[case]
    rewrite_tensors(saved_gate, tensors)
    with pytest.raises(ArtefactError, match="gate weight missing, of the wrong shape/dtype, or not finite"):
        load_gate(saved_gate)


def test_gate_for_another_model_is_refused(saved_gate, other_tiny_model, wide_model, tiny_model):
    with pytest.raises(ArtefactError, match="not for this model"):
        load_gate(saved_gate, model=other_tiny_model)
    with pytest.raises(ArtefactError, match="d_model=64, but this model has d_model=32"):
        load_gate(saved_gate, model=wide_model)
    edit_meta(saved_gate, layer=7)
    with pytest.raises(ArtefactError, match="do not fit this model"):
        load_gate(saved_gate, model=tiny_model)


def test_intact_artefacts_still_load(saved_vector, saved_gate, tiny_model):
    assert load_vector(saved_vector, model=tiny_model).layers == (1, 2)
    gate = load_gate(saved_gate, model=tiny_model)
    assert gate.layer == 1 and gate.g0 == 0.7 and gate.bias == 0.25


@FUZZ
@given(st.sampled_from(["vector", "gate"]), st.binary(max_size=4000))
def test_fuzz_artefact_tensor_bytes(tiny_model, tmp_path_factory, which, content):
    path = _fresh_artefact(tiny_model, tmp_path_factory, which)
    path.write_bytes(content)
    load_clear(load_vector if which == "vector" else load_gate, path)


@FUZZ
@given(st.sampled_from(["vector", "gate"]), st.data())
def test_fuzz_mutated_artefact_tensor_file_never_loads(tiny_model, tmp_path_factory, which, data):
    """Any change to the bytes of the tensor file is caught (decoding, shape checks or the checksum)."""
    path = _fresh_artefact(tiny_model, tmp_path_factory, which)
    content = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(content) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != content[pos]))
    content[pos] = new
    path.write_bytes(bytes(content))
    load_clear(load_vector if which == "vector" else load_gate, path)


@FUZZ
@given(st.sampled_from(["vector", "gate"]), json_values)
def test_fuzz_artefact_sidecar_json(tiny_model, tmp_path_factory, which, value):
    path = _fresh_artefact(tiny_model, tmp_path_factory, which)
    path.with_suffix(".json").write_text(json.dumps(value))
    load_clear(load_vector if which == "vector" else load_gate, path)


@FUZZ
@given(st.sampled_from(["vector", "gate"]), st.data())
def test_fuzz_artefact_sidecar_field_values(tiny_model, tmp_path_factory, which, data):
    """Each metadata field replaced by a random JSON value: a clear error, or an artefact that is consistent."""
    path = _fresh_artefact(tiny_model, tmp_path_factory, which)
    meta = json.loads(path.with_suffix(".json").read_text())
    for key in data.draw(st.lists(st.sampled_from(sorted(meta)), min_size=1, max_size=3, unique=True)):
        meta[key] = data.draw(json_values)
    path.with_suffix(".json").write_text(json.dumps(meta))
    loader = load_vector if which == "vector" else load_gate
    try:
        loaded = loader(path)
    except Exception as err:  # classified just below
        assert type(err) in CLEAR, f"{type(err).__name__}: {err}"
        assert path.stem in str(err)
        return
    if which == "vector":
        assert loaded.weight.shape == (loaded.n_layers, loaded.d_model) and torch.isfinite(loaded.weight).all()
        assert loaded.layers and all(0 <= x < loaded.n_layers for x in loaded.layers)
    else:
        assert 0 < loaded.g0 < 1 and torch.isfinite(loaded.weight).all() and loaded.kind in ("residual", "encoder")


_counter = itertools.count()


def _fresh_artefact(model, tmp_path_factory, which: str) -> Path:
    folder = tmp_path_factory.mktemp(f"fuzz{next(_counter)}", numbered=True)
    if which == "vector":
        return save_vector(make_vector(model), folder / "power")
    return save_gate(make_gate(model), folder / "gate")
