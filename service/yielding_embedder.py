"""An embedder wrapper for background encodes (admin re-indexes) that lets serving through.

The service embeds queries and re-index examples with the same model, one forward pass at a
time. An admin re-index of thousands of examples encoded in one call would hold the model for
its whole duration and classification would stall. `YieldingEmbedder` encodes in slices and,
after each, pauses briefly with the model free, so a waiting query pass takes it: a query waits
for at most one slice, and the re-index takes a little longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from router_core import Embedder
from router_core.embedding import Vectors

SLICE = 16  # texts per forward pass of the background encode
PAUSE_FRACTION = 0.1  # pause after each slice, as a share of the slice's own time
MIN_PAUSE_S = 0.002


class YieldingEmbedder:
    """`embedder`, encoding in slices of `slice_size` texts with a pause after each."""

    def __init__(self, embedder: Embedder, slice_size: int = SLICE) -> None:
        self._inner = embedder
        self._slice = max(1, slice_size)
        self.model_id = embedder.model_id
        self.dimension = embedder.dimension
        self.source = embedder.source
        self.backend = embedder.backend

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """The same vectors as the wrapped model's, computed slice by slice."""
        return self._sliced(self._inner.encode_queries, texts, batch_size)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """The same vectors as the wrapped model's, computed slice by slice."""
        return self._sliced(self._inner.encode_documents, texts, batch_size)

    def _sliced(self, encode: Callable[..., Vectors], texts: Sequence[str], batch_size: int) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self._slice):
            began = time.perf_counter()
            chunk = list(texts[start : start + self._slice])
            parts.append(encode(chunk, batch_size=min(batch_size, self._slice), progress=False))
            time.sleep(max(MIN_PAUSE_S, (time.perf_counter() - began) * PAUSE_FRACTION))
        return np.concatenate(parts).astype(np.float32, copy=False)
