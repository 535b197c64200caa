"""The real model, with each text's vector remembered for the test session.

Many tests index the shipped routes (or copies of them) into their own data directory. The
vectors are the model's own, computed once per text and side (query or document) per session
instead of once per test; a text the model has not seen is encoded by the real model as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from router_core import Embedder
from router_core.embedding import Vectors


class MemoEmbedder:
    """An `Embedder` that asks the wrapped model only for texts it has not embedded before."""

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self.model_id = model.model_id
        self.dimension = model.dimension
        self.source = model.source
        self.backend = model.backend
        self._seen: dict[tuple[bool, str], np.ndarray] = {}

    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Vectors of texts to route, new texts embedded by the model in one call."""
        return self._memo(True, self.model.encode_queries, texts, batch_size, progress)

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> Vectors:
        """Vectors of stored examples, new texts embedded by the model in one call."""
        return self._memo(False, self.model.encode_documents, texts, batch_size, progress)

    def _memo(
        self, query: bool, encode: Callable[..., Vectors], texts: Sequence[str], batch_size: int, progress: bool
    ) -> Vectors:
        fresh = list(dict.fromkeys(t for t in texts if (query, t) not in self._seen))
        if fresh:
            for text, vector in zip(fresh, encode(fresh, batch_size=batch_size, progress=progress), strict=True):
                self._seen[(query, text)] = vector
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._seen[(query, t)] for t in texts]).astype(np.float32)
