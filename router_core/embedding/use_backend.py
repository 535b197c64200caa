"""Universal Sentence Encoder Multilingual 3 (quantized ONNX) on ONNX Runtime.

The graph takes raw strings: its SentencePiece tokenizer is an op of the graph, provided by
`onnxruntime-extensions` (registered on this session only). Its weights are quantized with
dynamic int8 activations, whose scales are computed over the whole input tensor: the vectors of a
text depend on the other texts of its batch (cosine 0.9996 on a short query, 0.91 on a long one
batched with short ones). So every text runs as a batch of one, and a text always gets the same
vector, alone or in a bulk encode; a pass takes well under a millisecond.

The custom-op library is found without importing the `onnxruntime_extensions` package: its
`__init__` writes PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION into the process environment.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from router_core.embedding.packaged import USE_MULTILINGUAL
from router_core.embedding.protocol import Vectors
from router_core.errors import ModelUnavailable

# A call with at least this many texts per worker runs on the workers side by side.
SPLIT_MIN = 8


def custom_ops_library() -> Path:
    """The onnxruntime-extensions custom-op library (the package itself is not imported)."""
    spec = importlib.util.find_spec("onnxruntime_extensions")  # finds, does not run, the package
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_extensions_pydll{suffix}"
            if path.is_file():
                return path
    raise ModelUnavailable("onnxruntime-extensions is not installed; run bin/setup --multilingual")


class UseEmbedder:
    """USE Multilingual 3 (the `Embedder` protocol): queries and examples embedded alike."""

    backend = USE_MULTILINGUAL.backend
    dimension = USE_MULTILINGUAL.dimension
    model_id = USE_MULTILINGUAL.model_id
    source = USE_MULTILINGUAL.name

    def __init__(self, onnx_file: Path, *, threads: int, workers: int) -> None:
        import onnxruntime as ort

        self.threads = threads
        self.workers = max(1, workers)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads > 1:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.register_custom_ops_library(str(custom_ops_library()))
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Texts to route (the model embeds queries and examples alike)."""
        return self._encode(texts)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Stored examples. `batch_size` does not apply: every text is a pass of its own."""
        return self._encode(texts)

    def _one(self, text: str) -> Vectors:
        out: Vectors = self._session.run(["outputs"], {"inputs": np.array([text], dtype=object)})[0]
        return out

    def _rows(self, texts: Sequence[str]) -> Vectors:
        return np.vstack([self._one(t) for t in texts])

    def _encode(self, texts: Sequence[str]) -> Vectors:
        texts = list(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if self.workers > 1 and len(texts) >= SPLIT_MIN * self.workers:
            step = -(-len(texts) // self.workers)  # one contiguous share per worker
            shares = [texts[i : i + step] for i in range(0, len(texts), step)]
            with ThreadPoolExecutor(self.workers, thread_name_prefix="use-bulk") as pool:
                out[:] = np.vstack(list(pool.map(self._rows, shares)))
        else:
            out[:] = self._rows(texts)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out
